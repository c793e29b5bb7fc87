/**
 * Drift detection in simulated time (monitoring issue, evaluation): the agent's DriftMonitor and
 * DriftBaseline with their defaults (10-minute window of 10 buckets, 30 samples, a 600-row
 * baseline, 0.1 / 0.25), fed one vibration window per simulated second of a simulated machine,
 * with the int8 reference model `pdm-vibration-1.0.0` in the agent's worker-thread onnxruntime.
 * The monitor's clock is the simulated clock, so the window is ten simulated minutes; a summary
 * is read every 10 simulated seconds, as telemetry would.
 *
 * - Scenarios: sensor gain drift, a new shaft speed, a temperature offset on each machine type
 *   the model was trained on, starting at minute 15 (after the 10-minute baseline). Measured:
 *   simulated minutes from the onset to the first `alert`, and any alert before the onset.
 * - Healthy machines: devices × simulated hours of unchanging machines; every `warn` and
 *   `alert` summary is a false one. The target is 100 devices × 24 h; each window costs
 *   a few milliseconds of feature extraction here, so this run covers a stated fraction of it.
 *
 * Rows are inferred ten at a time (one batch per summary), stamped at the batch's end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { createWorkerRuntime } from '@cairn/agent';
import { DriftMonitor, DEFAULT_DRIFT_CONFIG } from '@cairn/agent/components/drift-monitor.js';
import { DEFAULT_BASELINE_SAMPLES, DriftBaseline } from '@cairn/agent/components/drift-baseline.js';
import type { ServedBundle } from '@cairn/agent/components/active-model.js';
import type { ModelSession } from '@cairn/agent/components/runtime/types.js';
import { createDeviceSignal, extractFeatures, FEATURE_COUNT, type DriftScenarioKind, type DriftSummaryT } from '@cairn/shared';
import { imageManifest, imageModelPath } from '../lib/paths.js';
import { table, type Benchmark } from '../lib/report.js';

const IMAGE = 'pdm-vibration-1.0.0-int8';
const MACHINES = ['pump-1800', 'fan-1200', 'motor-3600'] as const;
const SCENARIOS: DriftScenarioKind[] = ['sensor_gain_drift', 'shaft_speed_change', 'temperature_offset'];
const STEP_MS = 1000;
const SUMMARY_EVERY_MS = 10_000;
const ONSET_MS = 15 * 60_000;
/** Scenario runs stop this long after the onset if nothing alerted. */
const GIVE_UP_MS = 30 * 60_000;
const TARGET_DETECTION_MIN = 5;
const HEALTHY_DEVICES = 10;
const HEALTHY_HOURS = 2;

interface ScenarioResult {
  machine: string;
  scenario: DriftScenarioKind;
  /** Simulated minutes from onset to the first alert; null: none within GIVE_UP_MS. */
  detectedAfterMin: number | null;
  alertsBeforeOnset: number;
  maxFeature: string | null;
}

interface HealthyResult {
  devices: number;
  hours: number;
  summaries: number;
  warn: number;
  alert: number;
  maxPsi: number;
}

interface DriftEval {
  scenarios: ScenarioResult[];
  healthy: HealthyResult;
}

const logger = pino({ level: 'silent' });

/** Runs one simulated machine from 0 to `endMs`, calling `onSummary` every SUMMARY_EVERY_MS; stops early when it returns true. */
async function simulate(workDir: string, session: ModelSession, served: ServedBundle, options: { machine: string; seed: number; scenario?: DriftScenarioKind; endMs: number }, onSummary: (t: number, drift: DriftSummaryT) => boolean): Promise<void> {
  const stateDir = mkdtempSync(join(workDir, 'device-'));
  const sim = { t: 0 };
  const baseline = new DriftBaseline(stateDir, DEFAULT_BASELINE_SAMPLES, () => sim.t, logger);
  const monitor = new DriftMonitor(DEFAULT_DRIFT_CONFIG, baseline, () => sim.t, logger);
  const signal = createDeviceSignal({ machine: options.machine, seed: options.seed, startMs: 0, ...(options.scenario ? { scenario: { kind: options.scenario, startAfterMs: ONSET_MS } } : {}) });
  const perBatch = SUMMARY_EVERY_MS / STEP_MS;
  const input = served.manifest.inputs[0]!.name;
  try {
    for (let start = 0; start < options.endMs; start += SUMMARY_EVERY_MS) {
      const data = new Float32Array(perBatch * FEATURE_COUNT);
      for (let i = 0; i < perBatch; i++) {
        const window = signal.windowAt(start + i * STEP_MS);
        data.set(extractFeatures(window.samples, { sampleRateHz: signal.sampleRateHz, temperatureC: window.temperatureC }), i * FEATURE_COUNT);
      }
      const feeds = { [input]: { dims: [perBatch, FEATURE_COUNT], data } };
      const { outputs } = await session.infer(feeds);
      sim.t = start + SUMMARY_EVERY_MS;
      monitor.success(0, { feeds, outputs, bundle: served });
      if (onSummary(sim.t, monitor.summary(served)!)) return;
    }
  } finally {
    await baseline.stop();
    rmSync(stateDir, { recursive: true, force: true });
  }
}

async function run(workDir: string): Promise<DriftEval> {
  const runtime = createWorkerRuntime({ intraOpNumThreads: 1 });
  const { manifest } = imageManifest(IMAGE);
  const digest = manifest.files[0]!.digest;
  const session = await runtime.load(digest, imageModelPath(IMAGE));
  const served: ServedBundle = { manifest, digest, deploymentId: 'eval' };
  try {
    const scenarios: ScenarioResult[] = [];
    for (const [m, machine] of MACHINES.entries()) {
      for (const [s, scenario] of SCENARIOS.entries()) {
        const result: ScenarioResult = { machine, scenario, detectedAfterMin: null, alertsBeforeOnset: 0, maxFeature: null };
        await simulate(workDir, session, served, { machine, seed: 100 + m * 10 + s, scenario, endMs: ONSET_MS + GIVE_UP_MS }, (t, drift) => {
          if (drift.status !== 'alert') return false;
          if (t <= ONSET_MS) {
            result.alertsBeforeOnset++;
            return false;
          }
          result.detectedAfterMin = (t - ONSET_MS) / 60_000;
          result.maxFeature = drift.maxFeature;
          return true;
        });
        scenarios.push(result);
        process.stderr.write(`  ${machine} ${scenario}: ${result.detectedAfterMin ?? 'not detected'}\n`);
      }
    }
    const healthy: HealthyResult = { devices: HEALTHY_DEVICES, hours: HEALTHY_HOURS, summaries: 0, warn: 0, alert: 0, maxPsi: 0 };
    for (let d = 0; d < HEALTHY_DEVICES; d++) {
      await simulate(workDir, session, served, { machine: MACHINES[d % MACHINES.length]!, seed: 1000 + d, endMs: HEALTHY_HOURS * 3_600_000 }, (_t, drift) => {
        if (drift.maxFeaturePsi === null) return false;
        healthy.summaries++;
        if (drift.status === 'warn') healthy.warn++;
        if (drift.status === 'alert') healthy.alert++;
        healthy.maxPsi = Math.max(healthy.maxPsi, drift.maxFeaturePsi, drift.predictionPsi ?? 0);
        return false;
      });
      process.stderr.write(`  healthy device ${d + 1}/${HEALTHY_DEVICES}\n`);
    }
    return { scenarios, healthy };
  } finally {
    await session.close();
    await runtime.close();
  }
}

export const drift: Benchmark<DriftEval> = {
  name: 'drift',
  run,
  report({ scenarios, healthy }) {
    const detected = scenarios.filter((r) => r.detectedAfterMin !== null);
    const worst = detected.length === scenarios.length ? Math.max(...detected.map((r) => r.detectedAfterMin!)) : null;
    const early = scenarios.reduce((n, r) => n + r.alertsBeforeOnset, 0);
    return {
      targets: [
        {
          what: 'gain drift, new shaft speed, temperature offset detected (alert) after onset, 3 scenarios × 3 machine types',
          measured: worst === null ? `${detected.length} of ${scenarios.length} detected within ${GIVE_UP_MS / 60_000} min` : `all ${scenarios.length}, slowest after ${worst.toFixed(1)} simulated min; ${early} alerts before onset`,
          target: `≤ ${TARGET_DETECTION_MIN} simulated min`,
          met: worst !== null && worst <= TARGET_DETECTION_MIN && early === 0,
        },
        {
          what: `healthy machines raise no drift alert (${healthy.devices} devices × ${healthy.hours} simulated h; target scale 100 × 24 h)`,
          measured: `${healthy.alert} alert and ${healthy.warn} warn of ${healthy.summaries} summaries; largest PSI ${healthy.maxPsi.toFixed(4)}`,
          target: '0 alerts',
          met: healthy.alert === 0,
        },
      ],
      details: [
        `Drift detection in simulated time (\`test/bench/monitoring/drift.ts\`): the agent's DriftMonitor with its defaults, one window per simulated second, \`${IMAGE}\` in onnxruntime, onset at minute ${ONSET_MS / 60_000} after a ${DEFAULT_BASELINE_SAMPLES}-row baseline.`,
        table(
          ['machine', 'scenario', 'alert after onset (simulated min)', 'most drifted feature', 'alerts before onset'],
          scenarios.map((r) => [r.machine, r.scenario, r.detectedAfterMin === null ? `not within ${GIVE_UP_MS / 60_000}` : r.detectedAfterMin.toFixed(2), r.maxFeature ?? '—', String(r.alertsBeforeOnset)]),
        ),
      ].join('\n\n'),
    };
  },
};
