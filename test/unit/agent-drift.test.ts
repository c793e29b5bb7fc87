/**
 * The agent's drift monitor without a model: the ring of time buckets (expiry, late samples),
 * PSI against the device baseline on the manifest's bins, the window restarting on a model
 * change, the baseline surviving a restart in a real state directory, the telemetry contract,
 * and the drift reference parser.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildDriftReference, SCHEMA_REJECTIONS, checkValue, Compile, decodePayload, DriftSummary, gaussianArray, mulberry32, parseDriftReference, type DriftReference, type ManifestT } from '@cairn/shared';
import { DriftWindow } from '@cairn/agent/components/drift-window.js';
import { DriftMonitor, type DriftConfig } from '@cairn/agent/components/drift-monitor.js';
import { BASELINE_FILE, DriftBaseline } from '@cairn/agent/components/drift-baseline.js';
import type { ServedBundle } from '@cairn/agent/components/active-model.js';
import { waitFor } from '../helpers/wait.js';

const logger = pino({ level: 'silent' });
const CLASSES = ['healthy', 'fault'];
const NAMES = ['level', 'shape'];

test('the window is a ring of time buckets: old buckets expire, late samples are refused', () => {
  // 4 buckets of 250 ms; two features of 2 and 3 bins, 2 classes.
  const w = new DriftWindow(1000, 4, [2, 3], 2);
  assert.equal(w.bucketMs, 250);
  assert.ok(w.add(0, [0, 2], 1));
  assert.ok(w.add(260, [1, -1], 0), 'a feature without a bin still counts the row');
  assert.ok(w.add(999, [1, 0], -1), 'a row without a predicted class counts its features');
  assert.deepEqual(w.totals(999), { samples: 3, features: [[1, 2], [1, 0, 1]], predictions: [1, 1] });
  // At 1000 the bucket of period 0 has left the window; at 1250 that of period 1 too.
  assert.deepEqual(w.totals(1000), { samples: 2, features: [[0, 2], [1, 0, 0]], predictions: [1, 0] });
  assert.deepEqual(w.totals(1250), { samples: 1, features: [[0, 1], [1, 0, 0]], predictions: [0, 0] });
  // A sample for period 4 reuses period 0's slot (cleared first); period 0 itself is now too old.
  assert.ok(w.add(1001, [0, 1], 0));
  assert.equal(w.add(10, [0, 1], 0), false, 'older than the window: not counted');
  assert.deepEqual(w.totals(1001), { samples: 3, features: [[1, 2], [1, 1, 0]], predictions: [2, 0] });
  // The clock stepped back: buckets from "the future" are not in the window ending now.
  assert.deepEqual(w.totals(300), { samples: 1, features: [[0, 1], [0, 0, 0]], predictions: [1, 0] });
  // Long after: nothing.
  assert.deepEqual(w.totals(60_000), { samples: 0, features: [[0, 0], [0, 0, 0]], predictions: [0, 0] });
});

/** A reference with quantile bins on N(0,1) for both features and balanced classes. */
function reference(extra: Partial<DriftReference> = {}): DriftReference {
  const n = 2000;
  const a = gaussianArray(mulberry32(11), n);
  const b = gaussianArray(mulberry32(12), n);
  const features = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    features[2 * i] = a[i]!;
    features[2 * i + 1] = b[i]!;
  }
  const predicted = Int32Array.from({ length: n }, (_, i) => i % 2);
  return { ...buildDriftReference({ features, featureCount: 2, featureNames: NAMES, predictedClasses: predicted, classes: CLASSES }), ...extra };
}

function bundle(digest: string, driftReference: unknown): ServedBundle {
  const manifest = {
    name: 'm',
    version: '1.0.0',
    inputs: [{ name: 'x', type: 'float32', dims: ['batch', 2] }],
    outputs: [{ name: 'p', type: 'float32', dims: ['batch', 2] }],
    ...(driftReference === undefined ? {} : { driftReference }),
  } as unknown as ManifestT;
  return { manifest, digest: digest.repeat(64).slice(0, 64), deploymentId: 'dep' };
}

interface Rig {
  dir: string;
  now: { t: number };
  monitor: DriftMonitor;
  baseline: DriftBaseline;
}

async function rig(t: TestContext, config: Partial<DriftConfig> = {}, baselineSamples = 200, dir?: string): Promise<Rig> {
  const stateDir = dir ?? (await mkdtemp(join(tmpdir(), 'cairn-drift-')));
  const now = { t: 1_000_000 };
  const clock = () => now.t;
  const baseline = new DriftBaseline(stateDir, baselineSamples, clock, logger);
  // A test that reuses `dir` stops its own baseline; the owner of the directory removes it after its writes.
  t.after(() => baseline.stop());
  await baseline.load();
  if (!dir) t.after(() => rm(stateDir, { recursive: true, force: true }));
  const monitor = new DriftMonitor({ windowMs: 60_000, buckets: 6, minSamples: 30, ...config }, baseline, clock, logger);
  return { dir: stateDir, now, monitor, baseline };
}

/** `rows` inferences of a batch of one, 100 ms apart: features ~ N(shift, 1), class `fault` with probability pFault. */
function feed(r: Rig, served: ServedBundle, rows: number, seed: number, shift = 0, pFault = 0.5): void {
  const random = mulberry32(seed);
  const g = gaussianArray(mulberry32(seed + 1), rows * 2);
  for (let i = 0; i < rows; i++) {
    const fault = random() < pFault;
    r.monitor.success(1, {
      feeds: { x: { dims: [1, 2], data: Float32Array.of(g[2 * i]! + shift, g[2 * i + 1]!) } },
      outputs: { p: { dims: [1, 2], data: fault ? Float32Array.of(0.1, 0.9) : Float32Array.of(0.9, 0.1) } },
      bundle: served,
    });
    r.now.t += 100;
  }
}

const validSummary = Compile(DriftSummary);

test('PSI is null until the baseline is complete and the window holds minSamples; then low for the same data, alert for shifted data', async (t) => {
  const r = await rig(t, { windowMs: 30_000, buckets: 10 });
  const served = bundle('a', reference());
  assert.deepEqual(r.monitor.summary(served), { windowMs: 30_000, samples: 0, predictionPsi: null, maxFeaturePsi: null, maxFeature: null, features: {}, status: 'ok' });
  feed(r, served, 150, 1);
  const collecting = r.monitor.summary(served)!;
  assert.equal(collecting.samples, 150);
  assert.equal(collecting.predictionPsi, null, 'no baseline yet (200 rows)');
  feed(r, served, 100, 2);
  // 250 rows at 100 ms: the 30 s window holds the last ~300 rows, all of the same distribution.
  feed(r, served, 300, 3);
  const same = r.monitor.summary(served)!;
  assert.ok(checkValue(validSummary, same).ok, JSON.stringify(same));
  assert.ok(same.samples >= 270 && same.samples <= 300, String(same.samples));
  assert.deepEqual(Object.keys(same.features).sort(), [...NAMES].sort());
  assert.ok(same.maxFeaturePsi! < 0.1 && same.predictionPsi! < 0.1, JSON.stringify(same));
  assert.equal(same.status, 'ok');
  assert.equal(same.maxFeature, Object.entries(same.features).sort((x, y) => y[1] - x[1])[0]![0]);
  for (const v of Object.values(same.features)) assert.equal(v, Math.round(v * 1e4) / 1e4, 'rounded to 4 decimals');

  // The level feature shifts by 1σ and the machine looks faulty: after a full window, alert on both.
  feed(r, served, 300, 4, 1, 0.95);
  const shifted = r.monitor.summary(served)!;
  assert.equal(shifted.status, 'alert');
  assert.equal(shifted.maxFeature, 'level');
  // (A feature that did not move stays below alert; PSI of a few hundred rows carries sampling noise of a few hundredths.)
  assert.ok(shifted.features.level! > 0.25 && shifted.features.shape! < 0.25, JSON.stringify(shifted.features));
  assert.ok(shifted.predictionPsi! > 0.25, String(shifted.predictionPsi));
});

test("the manifest's thresholds decide the status; too few samples in the window make PSI null again", async (t) => {
  const r = await rig(t, { windowMs: 10_000, buckets: 5, minSamples: 50 }, 100);
  const strict = bundle('b', reference({ thresholds: { warn: 0.001, alert: 50 } }));
  feed(r, strict, 200, 5);
  feed(r, strict, 100, 6, 0.3);
  const drift = r.monitor.summary(strict)!;
  assert.equal(drift.status, 'warn', JSON.stringify(drift));
  r.now.t += 8_000; // the window keeps only the rows of its newest bucket(s)
  const thin = r.monitor.summary(strict)!;
  assert.ok(thin.samples < 50);
  assert.deepEqual([thin.predictionPsi, thin.maxFeaturePsi, thin.status, thin.features], [null, null, 'ok', {}]);
});

test('a model change restarts the window on the new manifest; a model without a drift reference has no drift section', async (t) => {
  const r = await rig(t, {}, 100);
  const v1 = bundle('c', reference());
  feed(r, v1, 150, 7);
  assert.equal(r.monitor.summary(v1)!.samples, 150);
  // Other edges (a reference built on other data), same feature names: the baseline is re-binned.
  const v2 = bundle('d', reference({ features: reference().features.map((f) => ({ ...f, edges: f.edges.map((e) => e * 2) })) }));
  assert.equal(r.monitor.summary(v2)!.samples, 0, 'the window restarted');
  feed(r, v2, 40, 8);
  const after = r.monitor.summary(v2)!;
  assert.equal(after.samples, 40);
  assert.notEqual(after.predictionPsi, null, 'the baseline outlives the model change');
  assert.equal(r.monitor.summary(bundle('e', undefined)), undefined);
  assert.equal(r.monitor.summary(null), undefined);
  // Back to v1 (a rollback): a fresh window again.
  assert.equal(r.monitor.summary(v1)!.samples, 0);
  // An unusable reference is not monitored (and inferences under it are ignored).
  const broken = bundle('f', { ...reference(), features: [{ name: 'level', edges: [1, 0], shares: [0.5, 0.25, 0.25] }] });
  feed(r, broken, 10, 9);
  assert.equal(r.monitor.summary(broken), undefined);
});

test('the baseline is stored once complete and read back after a restart; a damaged file is replaced', async (t) => {
  const first = await rig(t, {}, 50);
  const served = bundle('g', reference());
  feed(first, served, 60, 10);
  const stored = await waitFor('the baseline file', () => readFile(join(first.dir, BASELINE_FILE), 'utf8').then(JSON.parse));
  assert.equal(stored.schema, 'cairn.drift-baseline/v1');
  assert.deepEqual(stored.features, NAMES);
  assert.equal(stored.rows.length, 50);
  assert.equal(stored.predictions.length, 50);

  const second = await rig(t, {}, 50, first.dir);
  feed(second, served, 30, 11);
  assert.notEqual(second.monitor.summary(served)!.predictionPsi, null, 'PSI from the stored baseline, no new collection');
  assert.equal(second.baseline.pending, 0);

  await writeFile(join(first.dir, BASELINE_FILE), '{"schema":"cairn.drift-baseline/v1","features":["level"],"rows":[[1,2]]');
  const third = await rig(t, {}, 50, first.dir);
  feed(third, served, 30, 12);
  assert.equal(third.monitor.summary(served)!.predictionPsi, null, 'the damaged file was ignored; collecting again');
  assert.equal(third.baseline.pending, 30);
});

test('the drift reference parser names what is wrong', () => {
  const good = reference();
  assert.ok(parseDriftReference(good).ok);
  assert.ok(parseDriftReference({ ...good, future: 'field' }).ok, 'open for newer fields');
  const problem = (value: unknown) => {
    const parsed = parseDriftReference(value);
    return parsed.ok ? null : parsed.problem;
  };
  assert.match(problem({ ...good, schema: 'cairn.drift/v9' })!, /does not match cairn\.drift\/v1/);
  assert.match(problem({ ...good, features: [good.features[0], good.features[0]] })!, /repeats/);
  assert.match(problem({ ...good, features: [{ ...good.features[0]!, edges: [2, 1], shares: [0.3, 0.3, 0.4] }] })!, /strictly increasing/);
  assert.match(problem({ ...good, features: [{ ...good.features[0]!, shares: [1] }] })!, /shares for/);
  assert.match(problem({ ...good, features: [{ ...good.features[0]!, name: 'has space' }] })!, /does not match/);
  assert.match(problem({ ...good, predictions: { classes: ['a'], shares: [0.5, 0.5] } })!, /2 shares for 1 classes/);
  assert.match(problem({ ...good, thresholds: { warn: 0.3, alert: 0.2 } })!, /warn/);
});

test('the telemetry contract: a drift section is optional and closed; unknown fields, out-of-range PSI, bad names and statuses are refused', () => {
  const base = { seq: 1, ts: 1, intervalMs: 10_000, inferences: 3, errors: 0, latencyMs: null, rssMb: 50, cpuPct: 1, active: null };
  const drift = { windowMs: 600_000, samples: 40, predictionPsi: 0.01, maxFeaturePsi: 0.3, maxFeature: 'rms_g', features: { rms_g: 0.3, peak_g: 0.02 }, status: 'alert' };
  const decode = (value: unknown) => decodePayload('telemetry', Buffer.from(JSON.stringify(value)));
  assert.ok(decode(base).ok, 'no drift section');
  assert.ok(decode({ ...base, drift }).ok);
  assert.ok(decode({ ...base, drift: { ...drift, predictionPsi: null, maxFeaturePsi: null, maxFeature: null, features: {}, status: 'ok' } }).ok);
  for (const bad of [
    { ...drift, histogram: [1, 2] },
    { ...drift, maxFeaturePsi: 1e9 },
    { ...drift, predictionPsi: -1 },
    { ...drift, features: { 'has space': 0.1 } },
    { ...drift, features: { rms_g: 'high' } },
    { ...drift, status: 'panic' },
    { ...drift, samples: 1.5 },
  ]) {
    const decoded = decode({ ...base, drift: bad });
    assert.equal(decoded.ok, false, JSON.stringify(bad));
    assert.ok(!decoded.ok && (SCHEMA_REJECTIONS as readonly string[]).includes(decoded.reason), JSON.stringify(bad));
  }
});
