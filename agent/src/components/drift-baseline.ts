/**
 * The device's drift baseline, `<stateDir>/drift-baseline.json`: the input feature rows and
 * predicted classes of the first `samples` inferences this device ran, i.e. what normal looks
 * like on this machine.
 *
 * Why a per-device baseline, not the manifest's reference shares: a reference describes the
 * training population (several machine types, every fault class, a spread of temperatures),
 * and one healthy machine sits in a narrow part of it. Measured with `pdm-vibration-1.0.0`:
 * healthy pumps, fans and motors score PSI ≈ 8 on most features against the reference shares,
 * so every device would alert. The manifest still gives the bins (its quantile edges), the
 * class names and the thresholds; the expected shares come from this baseline, binned on the
 * active manifest's edges, so the baseline outlives model changes with the same features.
 *
 * Contracts:
 * - Raw rows, not bin counts, so a model with other edges re-bins the same baseline. They never
 *   leave the device (telemetry carries PSI only).
 * - Written once, atomically, when complete; read at start. A restart before completion
 *   collects again. A file that does not parse is ignored (logged) and replaced by the next
 *   complete baseline. A model whose features have other names starts a new baseline.
 * - Predictions are stored by class name, so a model with the same classes compares its
 *   predictions with what the previous model predicted on this machine.
 * - To accept a new normal (a replaced sensor, a new operating point), delete the file.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../adapters/atomic-file.js';

export const BASELINE_FILE = 'drift-baseline.json';
/**
 * Ten minutes of windows at the simulated source's default rate. PSI of finite samples carries
 * noise of about (bins − 1)·(1/baseline + 1/window): small against the 0.1 warn threshold only
 * with hundreds of rows on both sides.
 */
export const DEFAULT_BASELINE_SAMPLES = 600;
const BASELINE_SCHEMA = 'cairn.drift-baseline/v1';

export interface BaselineData {
  /** Feature names, in input order. */
  features: string[];
  /** One row per inference, row-major, `features.length` values each (NaN: not finite); float32 as the model saw them, in one array (a simulated fleet keeps a baseline per device). */
  values: Float32Array;
  /** Predicted class name per row (null: no prediction); its length is the number of rows. */
  predictions: (string | null)[];
  completedAt: number;
}

/** The file: one JSON array per row, null for a value that was not finite. */
interface BaselineFile extends Omit<BaselineData, 'values'> {
  schema: typeof BASELINE_SCHEMA;
  rows: (number | null)[][];
}

export class DriftBaseline {
  private readonly path: string;
  private data: BaselineData | null = null;
  private writing: Promise<void> = Promise.resolve();
  private collecting: { features: string[]; values: Float32Array; predictions: (string | null)[] } | null = null;

  constructor(
    stateDir: string,
    private readonly samples: number,
    private readonly clock: () => number,
    private readonly logger: Logger,
  ) {
    this.path = join(stateDir, BASELINE_FILE);
  }

  async load(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.logger.warn({ err, reason: 'baseline_unreadable' }, 'cannot read the drift baseline; collecting a new one');
      return;
    }
    const parsed = parseBaseline(text);
    if (typeof parsed === 'string') this.logger.warn({ reason: 'baseline_unreadable', problem: parsed }, 'ignoring a damaged drift baseline; collecting a new one');
    else this.data = parsed;
  }

  /** The complete baseline for these feature names, or null (none yet, or one of other features, which collection then replaces). */
  for(features: readonly string[]): BaselineData | null {
    return this.data && sameNames(this.data.features, features) ? this.data : null;
  }

  /** Adds one row while the baseline for `features` is incomplete; returns the baseline when this row completed it. */
  collect(features: readonly string[], row: ArrayLike<number>, prediction: string | null): BaselineData | null {
    if (this.for(features)) return null;
    if (!this.collecting || !sameNames(this.collecting.features, features)) this.collecting = { features: [...features], values: new Float32Array(this.samples * features.length), predictions: [] };
    const { values, predictions } = this.collecting;
    values.set(row, predictions.length * features.length);
    predictions.push(prediction);
    if (predictions.length < this.samples) return null;
    const names = this.collecting.features;
    this.collecting = null;
    if (this.data) this.logger.info({ previous: this.data.features.length, features: names.length }, 'the model takes other features: replacing the drift baseline');
    this.data = { features: names, values, predictions, completedAt: this.clock() };
    const width = names.length;
    const rows = predictions.map((_, r) => Array.from(values.subarray(r * width, (r + 1) * width), (v) => (Number.isFinite(v) ? v : null)));
    const file: BaselineFile = { schema: BASELINE_SCHEMA, features: names, rows, predictions, completedAt: this.data.completedAt };
    this.writing = this.writing.then(() =>
      writeFileAtomic(this.path, JSON.stringify(file)).then(
        () => this.logger.info({ samples: predictions.length }, 'drift baseline complete'),
        (err: Error) => this.logger.warn({ err }, 'could not store the drift baseline; it holds until the agent restarts'),
      ),
    );
    return this.data;
  }

  /** Waits for a baseline being written. */
  async stop(): Promise<void> {
    await this.writing;
  }

  /** Rows collected toward an incomplete baseline. */
  get pending(): number {
    return this.collecting?.predictions.length ?? 0;
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((name, i) => name === b[i]);
}

/** The baseline in `text`, or what is wrong with it. */
function parseBaseline(text: string): BaselineData | string {
  let value: Partial<BaselineFile>;
  try {
    value = JSON.parse(text) as Partial<BaselineFile>;
  } catch {
    return 'not JSON';
  }
  if (value?.schema !== BASELINE_SCHEMA) return `schema is not ${BASELINE_SCHEMA}`;
  const { features, rows, predictions, completedAt } = value;
  if (!Array.isArray(features) || !features.every((f) => typeof f === 'string')) return 'features must be names';
  if (!Array.isArray(rows) || rows.length === 0 || !rows.every((r) => Array.isArray(r) && r.length === features.length && r.every((v) => v === null || Number.isFinite(v)))) return `rows must hold ${features.length} numbers each`;
  if (!Array.isArray(predictions) || predictions.length !== rows.length || !predictions.every((p) => p === null || typeof p === 'string')) return 'predictions must name one class per row';
  if (typeof completedAt !== 'number') return 'completedAt is missing';
  return { features, values: Float32Array.from(rows.flat(), (v) => v ?? Number.NaN), predictions, completedAt };
}
