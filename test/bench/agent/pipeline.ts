/**
 * Pipeline overhead: one single-row inference of the int8 reference model four ways, on the same
 * held-out rows, interleaved (each round runs all four on the same row, one call at a time, in a
 * freshly shuffled order: the runtime and the pipeline share one worker thread, and a fixed order
 * would always hand one of them a thread the other had just woken), in this process:
 *
 * - `session.run` in the main thread: onnxruntime alone, with the agent's session options;
 * - a bare worker: the same session in a worker thread behind a minimal message protocol — the
 *   price of the worker hop the agent pays to keep onnxruntime off its event loop;
 * - the agent's runtime (`ModelSession.infer`): its worker protocol (feed checks, copies and
 *   transfers, output ownership);
 * - `Pipeline.infer` over `ActiveModel` on that very runtime session: what the local API and
 *   the simulated source call (latency stats, trial bookkeeping).
 *
 * Latency is measured around each call in the main thread. The ratios of medians separate the
 * layers; the target is Pipeline.infer against the bare session.
 */
import { Worker } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import pino from 'pino';
import { createWorkerRuntime } from '@cairn/agent';
import { ActiveModel } from '@cairn/agent/components/active-model.js';
import { InferenceStats } from '@cairn/agent/components/inference-stats.js';
import { Pipeline } from '@cairn/agent/components/pipeline.js';
import { generateDataset, mulberry32 } from '@cairn/shared';
import { distribution, ratio, us, type Distribution } from '../lib/stats.js';
import { imageManifest, imageModelPath } from '../lib/paths.js';
import { table, type Benchmark } from '../lib/report.js';
import { SESSION_OPTIONS } from './session-options.js';

const IMAGE = 'pdm-vibration-1.0.0-int8';
const WARMUP_ROUNDS = 1_000;
const ROUNDS = 10_000;
const TARGET_RATIO = 1.1;

const METHODS = ['main', 'bareWorker', 'runtime', 'pipeline'] as const;
type Method = (typeof METHODS)[number];
const LABELS: Record<Method, string> = {
  main: '`session.run`, main thread',
  bareWorker: 'bare session in a worker thread',
  runtime: "agent runtime `ModelSession.infer` (worker)",
  pipeline: '`Pipeline.infer` (ActiveModel → runtime worker)',
};

export interface PipelineResult {
  rounds: number;
  latency: Record<Method, Distribution>;
}

export const pipeline: Benchmark<PipelineResult> = {
  name: 'pipeline',
  async run() {
    const modelPath = imageModelPath(IMAGE);
    const manifest = imageManifest(IMAGE).manifest;
    const digest = manifest.files[0]!.digest;
    const data = generateDataset({ seed: 11, machines: ['pump-1800', 'fan-1200', 'motor-3600'], windowsPerClass: 40 });
    const rows = Array.from({ length: data.count }, (_, i) => data.features.slice(i * data.featureCount, (i + 1) * data.featureCount));
    const dims = [1, data.featureCount];

    const main = await ort.InferenceSession.create(modelPath, SESSION_OPTIONS);
    const bare = await BareWorker.start(modelPath);
    const runtime = createWorkerRuntime({ intraOpNumThreads: 1 });
    try {
      const session = await runtime.load(digest, modelPath);
      const active = new ActiveModel(pino({ level: 'silent' }));
      active.swap(session, { manifest, digest, deploymentId: 'bench' });
      const agentPipeline = new Pipeline(active, [new InferenceStats()]);
      const input = main.inputNames[0]!;

      const call: Record<Method, (row: Float32Array) => Promise<unknown>> = {
        main: (row) => main.run({ [input]: new ort.Tensor('float32', row, dims) }),
        bareWorker: (row) => bare.run(row),
        runtime: (row) => session.infer({ [input]: { dims, data: row } }),
        pipeline: (row) => agentPipeline.infer({ [input]: { dims, data: row } }),
      };
      const samples: Record<Method, number[]> = { main: [], bareWorker: [], runtime: [], pipeline: [] };
      const random = mulberry32(5);
      for (let round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
        const row = rows[round % rows.length]!;
        for (const method of shuffled(METHODS, random)) {
          const started = performance.now();
          await call[method](row);
          if (round >= WARMUP_ROUNDS) samples[method].push(performance.now() - started);
        }
      }
      await active.stop();
      return { rounds: ROUNDS, latency: { main: distribution(samples.main), bareWorker: distribution(samples.bareWorker), runtime: distribution(samples.runtime), pipeline: distribution(samples.pipeline) } };
    } finally {
      await runtime.close();
      await bare.close();
      await main.release();
    }
  },

  report(r) {
    const l = r.latency;
    const p50 = (a: Method, b: Method) => l[a].p50 / l[b].p50;
    const p99 = (a: Method, b: Method) => l[a].p99 / l[b].p99;
    return {
      targets: [
        {
          what: 'Pipeline overhead at p50: `Pipeline.infer` / bare `session.run` (main thread)',
          measured: `${ratio(p50('pipeline', 'main'))} (${ratio(p50('pipeline', 'bareWorker'))} against a bare session in a worker)`,
          target: `≤ ${TARGET_RATIO.toFixed(2)}×`,
          met: p50('pipeline', 'main') <= TARGET_RATIO,
        },
      ],
      details: `**Pipeline overhead**, int8 model, single-row inference, ${r.rounds.toLocaleString('en')} interleaved rounds after ${WARMUP_ROUNDS.toLocaleString('en')} warm-up rounds:

${table(
  ['path', 'p50', 'p99', 'p50 / previous row', 'p99 / previous row'],
  METHODS.map((m, i) => {
    const previous = i > 0 ? METHODS[i - 1]! : null;
    return [LABELS[m], us(l[m].p50), us(l[m].p99), previous ? ratio(p50(m, previous)) : '—', previous ? ratio(p99(m, previous)) : '—'];
  }),
)}`,
    };
  },
};

/** Fisher–Yates with the given generator. */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** The main-thread side of bare-worker.ts: one request at a time by id. */
class BareWorker {
  private readonly pending = new Map<number, (data: Float32Array) => void>();
  private nextId = 1;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (message: { id?: number; data?: Float32Array }) => {
      if (message.id === undefined) return;
      this.pending.get(message.id)?.(message.data!);
      this.pending.delete(message.id);
    });
  }

  static async start(modelPath: string): Promise<BareWorker> {
    const worker = new Worker(new URL('./bare-worker.js', import.meta.url), { workerData: { modelPath } });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    return new BareWorker(worker);
  }

  run(row: Float32Array): Promise<Float32Array> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      // A copy the worker owns, as the agent's runtime sends it.
      const data = row.slice();
      this.worker.postMessage({ id, data }, [data.buffer]);
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}
