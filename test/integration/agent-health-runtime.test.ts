/**
 * Safe activation's health checks on real onnxruntime workers with the signed reference images
 * (firmware-images/), below the agent: `ActiveModel` with a `TrialMonitor`, and the golden
 * probes. What agent-health.test.ts cannot see through the local API:
 *
 * - When a trial fails, the requests already waiting on the candidate are answered by the
 *   standby, never by the candidate (asserted per request, by which model answered).
 * - Probes and trials judge a model by its compute time in the worker, so a probe queued behind
 *   other work on a shared worker (the fleet simulator's) passes, while the slow image still
 *   fails on its own compute time.
 *
 * No assertion is on wall-clock time: latency budgets are compared with compute times that
 * differ from them by an order of magnitude or more, and each "it waited" claim is checked
 * against what it waited behind.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { resolveHealthPolicy, type HealthPolicy, type SignedManifestT } from '@cairn/shared';
import { ActiveModel, TRIAL_MAX_IN_FLIGHT, type ServedBundle } from '@cairn/agent/components/active-model.js';
import { TrialMonitor, type TrialFailure } from '@cairn/agent/components/health/trial-monitor.js';
import { runGoldenProbes } from '@cairn/agent/components/health/golden-probes.js';
import { createWorkerRuntime, type WorkerRuntime, type WorkerRuntimeOptions } from '@cairn/agent/components/runtime/worker-runtime.js';
import type { Feeds, Inference, ModelSession } from '@cairn/agent/components/runtime/types.js';
import { IMAGES } from '../helpers/processes.js';

const GOOD = 'pdm-vibration-1.0.0-int8';
const SLOW = 'pdm-vibration-1.0.1-slow';
const logger = pino({ level: process.env.CAIRN_TEST_LOG ?? 'silent' });

interface Loaded {
  session: ModelSession;
  bundle: ServedBundle;
  policy: HealthPolicy;
  /** The manifest's golden probe inputs, as feeds for a batch of one. */
  rows: Feeds[];
}

function runtimeFor(t: TestContext, options?: WorkerRuntimeOptions): WorkerRuntime {
  const runtime = createWorkerRuntime(options);
  t.after(() => runtime.close());
  return runtime;
}

async function load(runtime: WorkerRuntime, id: string): Promise<Loaded> {
  const { manifest } = JSON.parse(readFileSync(join(IMAGES, id, 'manifest.json'), 'utf8')) as SignedManifestT;
  const digest = manifest.files[0]!.digest;
  const session = await runtime.load(digest, join(IMAGES, id, 'model.onnx'));
  const policy = resolveHealthPolicy(manifest.health, session);
  const input = session.inputs[0]!;
  const rows = policy.probes.map((p) => ({ [input.name]: { dims: [1, p.input.length], data: Float32Array.from(p.input) } }));
  return { session, bundle: { manifest, digest, deploymentId: id }, policy, rows };
}

/** Feeds of `rows` copies of a probe row: a batch that keeps a worker busy for a while. */
function batchOf(model: Loaded, rows: number): Feeds {
  const [name, row] = Object.entries(model.rows[0]!)[0]!;
  const data = new Float32Array(rows * row.data.length);
  for (let r = 0; r < rows; r++) data.set(row.data, r * row.data.length);
  return { [name]: { dims: [rows, row.data.length], data } };
}

test('when a trial fails, the requests waiting on the candidate are answered by the standby, none by the candidate', async (t) => {
  const runtime = runtimeFor(t);
  const good = await load(runtime, GOOD);
  const slow = await load(runtime, SLOW);
  // Counts what is in flight on the candidate's session, to know what waited on it at the verdict,
  // and the results it still delivered after the verdict (each one something a client waited for).
  let failure: TrialFailure | null = null;
  let onCandidate = 0;
  let candidateResultsAfterVerdict = 0;
  const candidate: ModelSession = {
    digest: slow.session.digest,
    inputs: slow.session.inputs,
    outputs: slow.session.outputs,
    infer: (feeds, options) => {
      onCandidate++;
      return slow.session
        .infer(feeds, options)
        .then((result) => {
          if (failure) candidateResultsAfterVerdict++;
          return result;
        })
        .finally(() => onCandidate--);
    },
    close: () => slow.session.close(),
  };

  const active = new ActiveModel(logger);
  t.after(() => active.stop());
  active.swap(good.session, good.bundle);
  let onCandidateAtFailure = 0;
  const answers = new Map<number, string>();
  let pendingAtFailure: number[] = [];
  let sent = 0;
  active.beginTrial(candidate, slow.bundle, {
    // The manifest's trial policy with the built-in defaults: a latency verdict after 20 answers.
    monitor: new TrialMonitor(slow.policy.trial, true),
    onFailure(f) {
      failure = f;
      onCandidateAtFailure = onCandidate;
      pendingAtFailure = Array.from({ length: sent }, (_, i) => i).filter((i) => !answers.has(i));
    },
  });

  // Twelve clients, each sending its next request when the last is answered, until the verdict.
  const client = async (): Promise<void> => {
    while (!failure) {
      const id = sent++;
      const result = await active.infer(good.rows[id % good.rows.length]!);
      answers.set(id, result.bundle.digest);
    }
  };
  await Promise.all(Array.from({ length: 12 }, client));

  assert.equal(failure!.reason, 'trial_latency', failure!.message);
  assert.equal(active.current?.bundle.digest, good.bundle.digest, 'the standby serves again');
  assert.ok(onCandidateAtFailure >= 1, 'requests were waiting on the candidate at the verdict');
  assert.ok(onCandidateAtFailure <= TRIAL_MAX_IN_FLIGHT, `at most ${TRIAL_MAX_IN_FLIGHT} wait on a candidate, ${onCandidateAtFailure} did`);
  assert.equal(answers.size, sent, 'every request was answered');
  const byCandidate = pendingAtFailure.filter((i) => answers.get(i) === slow.bundle.digest);
  assert.deepEqual(byCandidate, [], `of ${pendingAtFailure.length} requests pending at the verdict, these were answered by the failed candidate`);
  assert.equal(candidateResultsAfterVerdict, 0, 'no request waited for the candidate after the verdict: its pending runs were abandoned, not awaited');
  const candidateAnswers = [...answers.values()].filter((d) => d === slow.bundle.digest).length;
  assert.ok(candidateAnswers >= 1, 'the candidate served during its trial');
});

test('a golden probe on a worker kept busy by other work is judged by its own compute time, not its wait', async (t) => {
  // The fleet simulator's runtime: loads of one digest share one worker.
  const runtime = runtimeFor(t, { shareByDigest: true });
  const probed = await load(runtime, GOOD);
  const other = await load(runtime, GOOD);
  const policy: HealthPolicy = { ...probed.policy, probeLatencyMs: 50 };
  // Another agent's work on the same worker, each batch computing for far longer than the budget
  // (~250 ms here): with three in flight, every request posted meanwhile has a whole batch ahead.
  const batches: Inference[] = [];
  let busy = true;
  const otherAgent = async (): Promise<void> => {
    while (busy) batches.push(await other.session.infer(batchOf(other, 50_000)));
  };
  const load3 = Array.from({ length: 3 }, otherAgent);
  try {
    const outcome = await runGoldenProbes(probed.session, policy);
    assert.deepEqual(outcome.ok && { ok: true, probes: outcome.probes }, { ok: true, probes: probed.rows.length }, JSON.stringify(outcome));

    const posted = performance.now();
    const one = await probed.session.infer(probed.rows[0]!);
    const waitedMs = performance.now() - posted;
    const shortestBatch = Math.min(...batches.map((b) => b.computeMs));
    assert.ok(shortestBatch > policy.probeLatencyMs, `the other work's batches computed for ${shortestBatch} ms at least, more than the ${policy.probeLatencyMs} ms budget`);
    assert.ok(waitedMs >= shortestBatch, `a probe row waited ${waitedMs} ms, behind a batch of at least ${shortestBatch} ms`);
    assert.ok(one.computeMs <= policy.probeLatencyMs, `and computed for ${one.computeMs} ms`);
  } finally {
    busy = false;
    await Promise.all(load3);
  }
});

test('the slow image fails its golden probes on its own compute time', async (t) => {
  const runtime = runtimeFor(t);
  const slow = await load(runtime, SLOW);
  // One row of the slow image is 256 layers of 512 × 512: milliseconds on any CPU.
  const outcome = await runGoldenProbes(slow.session, { ...slow.policy, probeLatencyMs: 1 });
  assert.equal(outcome.ok, false);
  assert.equal(!outcome.ok && outcome.reason, 'probe_latency');
  assert.match(!outcome.ok ? outcome.message : '', /probe 0 took [\d.]+ ms to compute, the budget is 1 ms/);
});
