/**
 * Drift on the device (DESIGN §4, monitoring issue item 1): an InferenceObserver of the
 * pipeline that bins each inference's input row and predicted class on the active manifest's
 * drift reference (`driftReference`, cairn.drift/v1) over a sliding window (`drift-window.ts`),
 * and gives the telemetry summary PSI per feature and for the predicted classes.
 *
 * Contracts:
 * - Only a model whose manifest carries a usable drift reference is monitored; otherwise the
 *   summary has no `drift` section. A reference that does not parse, or does not fit the
 *   model's input or output, is logged once per model with the reason.
 * - The expected shares are the device's own baseline (`drift-baseline.ts` says why), binned on
 *   the manifest's edges; PSI with the empty-bin floor (`psi`, shared/drift).
 * - A change of the served model (a trial beginning, a rollback, any swap: a new digest)
 *   restarts the window on the new manifest's bins. A commit changes nothing: the candidate
 *   already served. Relabelling (same digest, new deployment) changes nothing.
 * - PSI is null until the window holds `minSamples` rows and a baseline exists; a feature
 *   without samples in the window (all values non-finite) is left out of `features`.
 * - The input row is the model's single input, `features.length` values per row (a batch of n
 *   rows is n samples); the predicted class is the argmax of the first output's rows. Models
 *   with several inputs are not monitored.
 * - Never throws into the pipeline: an observer must not fail an inference.
 */
import type { Logger } from 'pino';
import { DEFAULT_DRIFT_THRESHOLDS, argmax, binCounts, binOf, parseDriftReference, psi, type DriftReference, type DriftStatusT, type DriftSummaryT, type DriftThresholds } from '@cairn/shared';
import type { InferenceObserver, ObservedInference } from './pipeline.js';
import type { ServedBundle } from './active-model.js';
import { DriftWindow } from './drift-window.js';
import type { BaselineData, DriftBaseline } from './drift-baseline.js';

export interface DriftConfig {
  /** Length of the sliding window. */
  windowMs: number;
  /** Time buckets the window is kept in (memory is one count per bin per bucket). */
  buckets: number;
  /** Rows the window needs before PSI is reported. */
  minSamples: number;
}

export const DEFAULT_DRIFT_CONFIG: Readonly<DriftConfig> = Object.freeze({ windowMs: 600_000, buckets: 10, minSamples: 30 });

/** What one served model is monitored with. */
interface Tracking {
  digest: string;
  /** null: this model is not monitored. */
  monitored: {
    reference: DriftReference;
    thresholds: DriftThresholds;
    names: string[];
    input: string;
    output: string | null;
    window: DriftWindow;
    /** Expected shares from the baseline, on this reference's bins; null until the baseline is complete. */
    expected: { features: number[][]; predictions: number[] | null } | null;
  } | null;
}

export class DriftMonitor implements InferenceObserver {
  private tracking: Tracking | null = null;
  private lastStatus: DriftStatusT | null = null;
  private readonly bins: number[] = [];

  constructor(
    private readonly config: DriftConfig,
    private readonly baseline: DriftBaseline,
    private readonly clock: () => number,
    private readonly logger: Logger,
  ) {}

  success(_latencyMs: number, inference: ObservedInference): void {
    try {
      this.observe(inference);
    } catch (err) {
      this.logger.warn({ err }, 'drift monitor could not observe an inference');
    }
  }

  failure(): void {}

  /** The window's drift for the telemetry summary; undefined when `served` is not monitored. */
  summary(served: ServedBundle | null): DriftSummaryT | undefined {
    if (!served) return undefined;
    const monitored = this.track(served).monitored;
    if (!monitored) return undefined;
    const { window, expected, reference, thresholds } = monitored;
    const totals = window.totals(this.clock());
    const drift: DriftSummaryT = { windowMs: window.windowMs, samples: totals.samples, predictionPsi: null, maxFeaturePsi: null, maxFeature: null, features: {}, status: 'ok' };
    if (expected && totals.samples >= this.config.minSamples) {
      reference.features.forEach((feature, f) => {
        const counts = totals.features[f]!;
        if (!counts.some((c) => c > 0)) return;
        const value = round4(psi(expected.features[f]!, counts));
        drift.features[feature.name] = value;
        if (drift.maxFeaturePsi === null || value > drift.maxFeaturePsi) {
          drift.maxFeaturePsi = value;
          drift.maxFeature = feature.name;
        }
      });
      if (expected.predictions && totals.predictions.some((c) => c > 0)) drift.predictionPsi = round4(psi(expected.predictions, totals.predictions));
      drift.status = statusOf(Math.max(drift.predictionPsi ?? 0, drift.maxFeaturePsi ?? 0), thresholds);
    }
    if (drift.status !== this.lastStatus) {
      if (this.lastStatus !== null || drift.status !== 'ok') {
        const log = drift.status === 'ok' ? this.logger.info.bind(this.logger) : this.logger.warn.bind(this.logger);
        log({ from: this.lastStatus, to: drift.status, predictionPsi: drift.predictionPsi, maxFeaturePsi: drift.maxFeaturePsi, maxFeature: drift.maxFeature }, 'drift status changed');
      }
      this.lastStatus = drift.status;
    }
    return drift;
  }

  private observe({ feeds, outputs, bundle }: ObservedInference): void {
    const monitored = this.track(bundle).monitored;
    if (!monitored) return;
    const { names, input, output, window } = monitored;
    const width = names.length;
    const data = feeds[input]?.data;
    if (!data || data.length === 0 || data.length % width !== 0) return;
    const rows = data.length / width;
    const scores = output !== null ? outputs[output]?.data : undefined;
    const classes = monitored.reference.predictions.classes;
    const predicted = scores && scores.length === rows * classes.length ? argmax(scores, rows, classes.length) : new Int32Array(rows).fill(-1);
    const now = this.clock();
    const features = monitored.reference.features;
    for (let r = 0; r < rows; r++) {
      const row = data.subarray(r * width, (r + 1) * width);
      for (let f = 0; f < width; f++) this.bins[f] = Number.isFinite(row[f]!) ? binOf(features[f]!.edges, row[f]!) : -1;
      window.add(now, this.bins, predicted[r]!);
      const completed = this.baseline.collect(names, row, predicted[r]! >= 0 ? classes[predicted[r]!]! : null);
      if (completed) monitored.expected = expectedShares(monitored.reference, completed);
    }
  }

  /** The tracking of `bundle`; a new digest restarts it on that manifest. */
  private track(bundle: ServedBundle): Tracking {
    if (this.tracking?.digest === bundle.digest) return this.tracking;
    this.tracking = { digest: bundle.digest, monitored: this.monitor(bundle) };
    this.lastStatus = null;
    return this.tracking;
  }

  private monitor(bundle: ServedBundle): Tracking['monitored'] {
    const { manifest, digest } = bundle;
    if (manifest.driftReference === undefined) return null;
    const log = this.logger.child({ model: `${manifest.name}@${manifest.version}`, digest: digest.slice(0, 12) });
    const parsed = parseDriftReference(manifest.driftReference);
    const problem = !parsed.ok ? `drift reference ${parsed.problem}` : manifest.inputs.length !== 1 ? `the model has ${manifest.inputs.length} inputs; drift is monitored for single-input models` : null;
    if (!parsed.ok || problem) {
      log.warn({ reason: 'drift_reference_unusable', problem }, 'not monitoring drift for this model');
      return null;
    }
    const reference = parsed.reference;
    const names = reference.features.map((f) => f.name);
    const window = new DriftWindow(this.config.windowMs, this.config.buckets, reference.features.map((f) => f.edges.length + 1), reference.predictions.classes.length);
    const baseline = this.baseline.for(names);
    log.info({ features: names.length, baseline: baseline ? baseline.predictions.length : `collecting (${this.baseline.pending} rows so far)` }, 'monitoring drift');
    return {
      reference,
      thresholds: reference.thresholds ?? DEFAULT_DRIFT_THRESHOLDS,
      names,
      input: manifest.inputs[0]!.name,
      output: manifest.outputs[0]?.name ?? null,
      window,
      expected: baseline ? expectedShares(reference, baseline) : null,
    };
  }
}

/** The baseline's shares on the reference's bins; prediction shares over the reference's classes (null when none of the baseline's predictions is one of them). */
function expectedShares(reference: DriftReference, baseline: BaselineData): { features: number[][]; predictions: number[] | null } {
  const width = baseline.features.length;
  const column = new Float64Array(baseline.predictions.length);
  const features = reference.features.map((feature, f) => {
    for (let r = 0; r < column.length; r++) column[r] = baseline.values[r * width + f]!;
    return shares(binCounts(feature.edges, column.filter(Number.isFinite)));
  });
  const classes = reference.predictions.classes;
  const counts = new Array<number>(classes.length).fill(0);
  for (const name of baseline.predictions) {
    const c = name === null ? -1 : classes.indexOf(name);
    if (c >= 0) counts[c]!++;
  }
  return { features, predictions: counts.some((c) => c > 0) ? shares(counts) : null };
}

function shares(counts: number[]): number[] {
  const total = counts.reduce((a, b) => a + b, 0);
  return counts.map((c) => (total === 0 ? 0 : c / total));
}

function statusOf(value: number, thresholds: DriftThresholds): DriftStatusT {
  return value >= thresholds.alert ? 'alert' : value >= thresholds.warn ? 'warn' : 'ok';
}

const round4 = (x: number): number => Math.round(x * 1e4) / 1e4;
