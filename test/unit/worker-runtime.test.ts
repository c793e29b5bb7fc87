/**
 * The agent's model runtime with real onnxruntime worker threads and real model files: results,
 * error paths (each must reject with onnxruntime's message and leave no worker behind), sharing
 * by digest, and the close/crash guarantees of runtime/types.ts and worker-runtime.ts.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { sha256Hex } from '@cairn/shared';
import type { Inference, ModelSession } from '@cairn/agent/components/runtime/types.js';
import { createWorkerRuntime, ModelRuntimeError, SIMULATE_WORKER_CRASH, type WorkerRuntime, type WorkerRuntimeOptions } from '@cairn/agent/components/runtime/worker-runtime.js';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { IMAGES } from '../helpers/processes.js';
import { sleep } from '../helpers/wait.js';
import { mlpForward } from '@cairn/hub/training/onnx-writer.js';
import { gaussianArray, mulberry32 } from '@cairn/shared';

interface Fixture {
  runtime: WorkerRuntime;
  dir: string;
  modelPath: string;
  digest: string;
  demo: ReturnType<typeof buildDemoModel>;
}

async function fixture(t: TestContext, options?: WorkerRuntimeOptions): Promise<Fixture> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-runtime-'));
  const runtime = createWorkerRuntime(options);
  // Registered in this order so that the runtime closes before its files disappear.
  t.after(() => rm(dir, { recursive: true, force: true }));
  t.after(() => runtime.close());
  const demo = buildDemoModel({ seed: 3 });
  const modelPath = join(dir, 'demo.onnx');
  await writeFile(modelPath, demo.bytes);
  return { runtime, dir, modelPath, digest: sha256Hex(demo.bytes), demo };
}

function features(batch: number, seed = 1): Float32Array {
  return gaussianArray(mulberry32(seed), batch * 16, 2);
}

type Spec = Fixture['demo']['spec'];

function assertMatchesForward(out: Inference, spec: Spec, x: Float32Array, batch: number): void {
  const probabilities = out.outputs['probabilities'];
  assert.ok(probabilities);
  assert.deepEqual(probabilities.dims, [batch, 4]);
  const expected = mlpForward(spec, x, batch);
  assert.equal(probabilities.data.length, expected.length);
  probabilities.data.forEach((p, i) => assert.ok(Math.abs(p - expected[i]!) <= 1e-5, `element ${i}: ${p} vs ${expected[i]}`));
}

async function assertServes(session: ModelSession, spec: Spec, batch = 2): Promise<void> {
  const x = features(batch, batch);
  assertMatchesForward(await session.infer({ features: { dims: [batch, 16], data: x } }), spec, x, batch);
}

async function assertRejectsWith(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof ModelRuntimeError, `expected a ModelRuntimeError, got ${String(error)}`);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

test('load reports the signature and infer matches mlpForward', async (t) => {
  const { runtime, modelPath, digest, demo } = await fixture(t);
  const session = await runtime.load(digest, modelPath);
  assert.equal(session.digest, digest);
  assert.deepEqual(session.inputs, [{ name: 'features', type: 'float32', dims: ['batch', 16] }]);
  assert.deepEqual(session.outputs, [{ name: 'probabilities', type: 'float32', dims: ['batch', 4] }]);
  assert.deepEqual(runtime.stats(), { workers: 1, sessions: 1 });
  for (const batch of [1, 4, 50]) await assertServes(session, demo.spec, batch);
});

test('the caller keeps its input arrays: infer copies them rather than detaching them', async (t) => {
  const { runtime, modelPath, digest, demo } = await fixture(t);
  const session = await runtime.load(digest, modelPath);
  const x = features(3);
  const before = Float32Array.from(x);
  const first = await session.infer({ features: { dims: [3, 16], data: x } });
  assert.deepEqual(x, before);
  const second = await session.infer({ features: { dims: [3, 16], data: x } });
  assert.deepEqual(second.outputs['probabilities']?.data, first.outputs['probabilities']?.data);
  // A view into a larger buffer sends only its own values.
  const big = new Float32Array(1000);
  big.set(x, 100);
  const viewed = await session.infer({ features: { dims: [3, 16], data: big.subarray(100, 148) } });
  assertMatchesForward(viewed, demo.spec, x, 3);
  assert.deepEqual(viewed.outputs['probabilities']?.data, first.outputs['probabilities']?.data);
});

test('many concurrent inferences each get their own answer', async (t) => {
  const { runtime, modelPath, digest, demo } = await fixture(t);
  const session = await runtime.load(digest, modelPath);
  const batches = Array.from({ length: 40 }, (_, i) => (i % 7) + 1);
  const results = await Promise.all(batches.map((batch, i) => session.infer({ features: { dims: [batch, 16], data: features(batch, 1000 + i) } })));
  results.forEach((out, i) => assertMatchesForward(out, demo.spec, features(batches[i]!, 1000 + i), batches[i]!));
});

test('each answer carries its compute time in the worker, without the time it waited there', async (t) => {
  const { runtime, modelPath, digest, demo } = await fixture(t);
  const session = await runtime.load(digest, modelPath);
  await assertServes(session, demo.spec); // a fresh session allocates on its first run
  const rows = 100_000;
  const posted = performance.now();
  const big = session.infer({ features: { dims: [rows, 16], data: features(rows, 7) } });
  const small = session.infer({ features: { dims: [1, 16], data: features(1) } }).then((answer) => ({ ...answer, waitedMs: performance.now() - posted }));
  const [b, s] = await Promise.all([big, small]);
  for (const answer of [b, s]) assert.ok(Number.isFinite(answer.computeMs) && answer.computeMs >= 0, String(answer.computeMs));
  // The worker runs one request at a time, so the single row waited for the 100,000 before it …
  assert.ok(s.waitedMs >= b.computeMs, `waited ${s.waitedMs} ms, the batch before it computed for ${b.computeMs} ms`);
  // … and that wait is not in its compute time.
  assert.ok(s.computeMs < b.computeMs, `one row computed for ${s.computeMs} ms, ${rows} rows for ${b.computeMs} ms`);
});

test('an aborted inference rejects at once, before what it queued behind; the session keeps serving', async (t) => {
  const { runtime, modelPath, digest, demo } = await fixture(t);
  const session = await runtime.load(digest, modelPath);
  const rows = 100_000;
  const settled: string[] = [];
  const busy = session.infer({ features: { dims: [rows, 16], data: features(rows, 7) } }).then(() => settled.push('busy answered'));
  const controller = new AbortController();
  const queued = [1, 2, 3].map((i) =>
    session.infer({ features: { dims: [1, 16], data: features(1, i) } }, { signal: controller.signal }).then(
      () => settled.push('answered'),
      (error: ModelRuntimeError) => settled.push(error.code),
    ),
  );
  controller.abort();
  await Promise.all(queued);
  assert.deepEqual(settled, ['CAIRN_RUNTIME_ABORTED', 'CAIRN_RUNTIME_ABORTED', 'CAIRN_RUNTIME_ABORTED'], 'none waited for the batch ahead of it');
  await busy;
  // Requests after the skipped ones are answered with their own results.
  await assertServes(session, demo.spec, 3);
  await assertRejectsWith(session.infer({ features: { dims: [1, 16], data: features(1) } }, { signal: controller.signal }), 'CAIRN_RUNTIME_ABORTED', /aborted/);
  await session.close();
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });
});

test('a wrong input name or shape rejects with onnxruntime’s message and the session keeps serving', async (t) => {
  const { runtime, modelPath, digest, demo } = await fixture(t);
  const session = await runtime.load(digest, modelPath);
  await assertRejectsWith(session.infer({ feature: { dims: [1, 16], data: features(1) } }), 'CAIRN_RUNTIME_INFER_FAILED', /input 'features' is missing in 'feeds'/);
  await assertServes(session, demo.spec);
  await assertRejectsWith(
    session.infer({ features: { dims: [2, 15], data: features(2).subarray(0, 30) } }),
    'CAIRN_RUNTIME_INFER_FAILED',
    /Got invalid dimensions for input: features[\s\S]*Got: 15 Expected: 16/,
  );
  await assertServes(session, demo.spec);
  await assertRejectsWith(session.infer({ features: { dims: [2, 16], data: features(1) } }), 'CAIRN_RUNTIME_INFER_FAILED', /size\(32\) does not match data length\(16\)/);
  const notFloat = { features: { dims: [1, 16], data: Array.from(features(1)) } } as unknown as Parameters<ModelSession['infer']>[0];
  await assertRejectsWith(session.infer(notFloat), 'CAIRN_RUNTIME_BAD_FEEDS', /Float32Array/);
  await assertServes(session, demo.spec);
  assert.deepEqual(runtime.stats(), { workers: 1, sessions: 1 });
});

test('a file that is not ONNX, or a truncated one, rejects with onnxruntime’s message and leaves no worker', async (t) => {
  const { runtime, dir, demo } = await fixture(t);
  const garbage = join(dir, 'garbage.onnx');
  await writeFile(garbage, 'this is not a protobuf model, just text\n');
  await assertRejectsWith(runtime.load('garbage', garbage), 'CAIRN_RUNTIME_LOAD_FAILED', /Load model from .*garbage\.onnx failed:.*Protobuf parsing failed/);
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });

  const truncated = join(dir, 'truncated.onnx');
  await writeFile(truncated, demo.bytes.subarray(0, Math.floor(demo.bytes.length / 2)));
  await assertRejectsWith(runtime.load('truncated', truncated), 'CAIRN_RUNTIME_LOAD_FAILED', /Load model from .*truncated\.onnx failed:/);
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });

  await assertRejectsWith(runtime.load('missing', join(dir, 'missing.onnx')), 'CAIRN_RUNTIME_LOAD_FAILED', /File doesn't exist/);
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });
});

test('a load that does not finish in time fails and its worker is terminated', async (t) => {
  // 1 ms is far less than starting a thread and onnxruntime; nothing else here depends on time.
  const { runtime, modelPath, digest } = await fixture(t, { loadTimeoutMs: 1 });
  await assertRejectsWith(runtime.load(digest, modelPath), 'CAIRN_RUNTIME_LOAD_TIMEOUT', /did not finish within 1 ms/);
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });
});

test('without shareByDigest every load gets its own worker', async (t) => {
  const { runtime, modelPath, digest } = await fixture(t);
  const a = await runtime.load(digest, modelPath);
  const b = await runtime.load(digest, modelPath);
  assert.deepEqual(runtime.stats(), { workers: 2, sessions: 2 });
  await a.close();
  assert.deepEqual(runtime.stats(), { workers: 1, sessions: 1 });
  await b.close();
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });
});

test('shareByDigest shares one worker per digest and terminates it after the last close', async (t) => {
  const { runtime, modelPath, digest, demo, dir } = await fixture(t, { shareByDigest: true });
  const [a, b] = await Promise.all([runtime.load(digest, modelPath), runtime.load(digest, modelPath)]);
  const c = await runtime.load(digest, modelPath);
  assert.deepEqual(runtime.stats(), { workers: 1, sessions: 3 });

  const otherBytes = buildDemoModel({ seed: 4 }).bytes;
  const otherPath = join(dir, 'other.onnx');
  await writeFile(otherPath, otherBytes);
  const other = await runtime.load(sha256Hex(otherBytes), otherPath);
  assert.deepEqual(runtime.stats(), { workers: 2, sessions: 4 });

  await a.close();
  await b.close();
  assert.deepEqual(runtime.stats(), { workers: 2, sessions: 2 });
  await assertServes(c, demo.spec);
  await c.close();
  assert.deepEqual(runtime.stats(), { workers: 1, sessions: 1 });

  // A later load of the released digest starts a fresh worker.
  const d = await runtime.load(digest, modelPath);
  await assertServes(d, demo.spec);
  assert.deepEqual(runtime.stats(), { workers: 2, sessions: 2 });
  await Promise.all([d.close(), other.close()]);
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });
});

test('close is idempotent, drains what was already posted, and later inferences reject', async (t) => {
  const { runtime, modelPath, digest, demo } = await fixture(t);
  const session = await runtime.load(digest, modelPath);
  const inFlight = session.infer({ features: { dims: [2, 16], data: features(2) } });
  const closing = session.close();
  assertMatchesForward(await inFlight, demo.spec, features(2), 2);
  await closing;
  await session.close();
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });
  await assertRejectsWith(session.infer({ features: { dims: [1, 16], data: features(1) } }), 'CAIRN_RUNTIME_CLOSED', /closed/);
});

test('runtime.close terminates every worker; its sessions and later loads reject', async (t) => {
  const { runtime, modelPath, digest } = await fixture(t);
  const a = await runtime.load(digest, modelPath);
  const b = await runtime.load(digest, modelPath);
  await runtime.close();
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });
  await assertRejectsWith(a.infer({ features: { dims: [1, 16], data: features(1) } }), 'CAIRN_RUNTIME_CLOSED', /closed/);
  await assertRejectsWith(runtime.load(digest, modelPath), 'CAIRN_RUNTIME_CLOSED', /closed/);
  await Promise.all([a.close(), b.close(), runtime.close()]);
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });
});

test('runtime.close during a long run rejects it at once and ends the worker after the run, without aborting the process', async (t) => {
  const { runtime } = await fixture(t);
  // The slow reference image: 50 rows take hundreds of milliseconds in onnxruntime's run.
  const slow = 'pdm-vibration-1.0.1-slow';
  const session = await runtime.load(slow, join(IMAGES, slow, 'model.onnx'));
  const rows = 50;
  const settled: string[] = [];
  const running = session.infer({ features: { dims: [rows, 19], data: new Float32Array(rows * 19).fill(0.5) } }).then(
    () => settled.push('answered'),
    (error: ModelRuntimeError) => settled.push(error.code),
  );
  const queued = session.infer({ features: { dims: [1, 19], data: new Float32Array(19).fill(0.5) } });
  void queued.catch(() => undefined);
  await sleep(20); // the batch is then (almost surely) inside the run; before it, close is just a cancel
  // Terminating the thread inside the run would abort this whole test process (SIGABRT).
  await runtime.close();
  await running;
  assert.deepEqual(settled, ['CAIRN_RUNTIME_CLOSED']);
  await assertRejectsWith(queued, 'CAIRN_RUNTIME_CLOSED', /closed/);
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 0 });
});

test('a crashed worker rejects in-flight and later calls on its sessions; the runtime keeps working', async (t) => {
  const { runtime, modelPath, digest, demo } = await fixture(t, { shareByDigest: true });
  const a = await runtime.load(digest, modelPath);
  const b = await runtime.load(digest, modelPath);
  (a as ModelSession & { [SIMULATE_WORKER_CRASH](): void })[SIMULATE_WORKER_CRASH]();
  const crashed = /the model worker for .* crashed: simulated crash of the inference worker/;
  await assertRejectsWith(a.infer({ features: { dims: [1, 16], data: features(1) } }), 'CAIRN_RUNTIME_WORKER_EXITED', crashed);
  await assertRejectsWith(b.infer({ features: { dims: [1, 16], data: features(1) } }), 'CAIRN_RUNTIME_WORKER_EXITED', crashed);
  assert.deepEqual(runtime.stats(), { workers: 0, sessions: 2 });

  // The crashed digest is not shared any more: a new load gets a working worker.
  const c = await runtime.load(digest, modelPath);
  await assertServes(c, demo.spec);
  await Promise.all([a.close(), b.close(), a.close()]);
  await assertServes(c, demo.spec);
  assert.deepEqual(runtime.stats(), { workers: 1, sessions: 1 });
});
