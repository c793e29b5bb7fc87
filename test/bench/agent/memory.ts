/**
 * Agent memory with the int8 reference model loaded: a real `cairn-agent run` process (local
 * API on, no simulated source, the hub in the bench process), read from /proc/<pid>/status —
 * the whole process, its model worker thread included. Sampled when connected with no model,
 * once the int8 model is committed (after its trial), and after successive batches of local-API
 * inferences. RssAnon (private heaps, stacks, onnxruntime's allocations) is what the agent
 * really costs; RssFile is mostly node's and onnxruntime's shared libraries, shareable between
 * processes. Anonymous memory is split into glibc malloc arenas and the rest (mostly V8 heaps).
 *
 * The agent runs with the node flags of the systemd unit it ships with
 * (`agent/deploy/cairn-agent.service`, read from its ExecStart line), as a device runs it. To
 * explain the figures, the same run measures three reference processes — bare idle `node`,
 * `node` that has only imported the agent's code, and bare `node` with one worker thread holding
 * an onnxruntime session of the same model — and, for comparison, the same agent under plain
 * `node` (no flags: V8's default young generation of 16 MB per semi-space in the main thread).
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { closedLoop, inferBodies } from '../lib/load.js';
import { procAnonBreakdown, procMemory, referenceMemory, type AnonBreakdown, type ProcMemory } from '../lib/proc.js';
import { mb, mbOfKib, sleep, until } from '../lib/stats.js';
import { imageModelPath, REPO } from '../lib/paths.js';
import { spawnAgent, startBenchHub, type BenchHub } from '../lib/world.js';
import { table, type Benchmark } from '../lib/report.js';

const IMAGE = 'pdm-vibration-1.0.0-int8';
/** Cumulative local-API inferences after which memory is sampled again. */
const CHECKPOINTS = [1_000, 10_000, 50_000];
const RSS_ANON_TARGET_MB = 40;
const VM_RSS_TARGET_MB = 100;
/** Let the agent settle (timers, GC) before a sample. */
const SETTLE_MS = 2000;
const ORT_REFERENCE = fileURLToPath(new URL('./ort-reference.js', import.meta.url));
/** The node flags of the shipped systemd unit: `ExecStart=/usr/bin/node <flags> …/main.js run …`. */
const UNIT_FLAGS = (() => {
  const unit = readFileSync(join(REPO, 'agent/deploy/cairn-agent.service'), 'utf8');
  const exec = /^ExecStart=\S+\/node((?:\s+--\S+)*)\s+\S+main\.js run/m.exec(unit);
  if (!exec) throw new Error('no `ExecStart=…/node [flags] …main.js run` line in cairn-agent.service');
  return exec[1]!.trim().split(/\s+/).filter(Boolean);
})();

interface Sample {
  when: string;
  /** Taken with the model committed (what the targets are about). */
  loaded: boolean;
  memory: ProcMemory;
  breakdown: AnonBreakdown;
}

export interface MemoryResult {
  references: Sample[];
  agent: Sample[];
  diagnostic: Sample[];
  failedRequests: number;
}

export const memory: Benchmark<MemoryResult> = {
  name: 'memory',
  async run(workDir) {
    const references: Sample[] = [
      { when: 'reference: bare `node`, idle', loaded: false, ...(await referenceMemory(['-e', 'console.log("ready"); setInterval(() => {}, 1000)'])) },
      { when: 'reference: bare `node` that has imported `@cairn/agent` (nothing started)', loaded: false, ...(await referenceMemory(['--input-type=module', '-e', 'await import("@cairn/agent"); console.log("ready"); setInterval(() => {}, 1000)'])) },
      { when: 'reference: bare `node` + one worker holding an onnxruntime session of the int8 model', loaded: false, ...(await referenceMemory([ORT_REFERENCE, imageModelPath(IMAGE)])) },
    ];
    const hub = await startBenchHub(join(workDir, 'hub'));
    try {
      const model = await hub.publish(IMAGE);
      const agent = await measureAgent(hub, model, join(workDir, 'agent'), UNIT_FLAGS, CHECKPOINTS);
      const diagnostic = await measureAgent(hub, model, join(workDir, 'diagnostic'), [], [10_000]);
      return { references, agent: agent.samples, diagnostic: diagnostic.samples, failedRequests: agent.failed + diagnostic.failed };
    } finally {
      await hub.close();
    }
  },

  report(r) {
    const loaded = r.agent.filter((s) => s.loaded);
    const committed = loaded[0]!;
    const highest = (field: 'rssAnon' | 'vmRss') => loaded.reduce((a, b) => (b.memory[field] > a.memory[field] ? b : a));
    const row = (s: Sample, prefix = '') => [prefix + s.when, mb(s.memory.vmRss), mb(s.memory.rssAnon), mb(s.breakdown.malloc), String(s.breakdown.arenas), mb(s.breakdown.other), mb(s.memory.rssFile), String(s.memory.threads)];
    return {
      targets: (['rssAnon', 'vmRss'] as const).map((field) => {
        const worst = highest(field);
        const limit = field === 'rssAnon' ? RSS_ANON_TARGET_MB : VM_RSS_TARGET_MB;
        return {
          what: `Agent ${field === 'rssAnon' ? 'RssAnon' : 'VmRSS'}, int8 model committed (\`cairn-agent run\` as the systemd unit runs it; highest sample up to ${CHECKPOINTS.at(-1)!.toLocaleString('en')} inferences)`,
          measured: `${mb(committed.memory[field])} committed, ${mb(worst.memory[field])} highest (${worst.when})`,
          target: `≤ ${limit} MB`,
          met: mbOfKib(worst.memory[field]) <= limit,
        };
      }),
      details: `**Agent memory** (/proc/<pid>/status, MB = 10⁶ bytes; "malloc" = glibc arenas, "other anon" = mostly V8 heaps, from /proc/<pid>/smaps; ${r.failedRequests} failed requests):

${table(
  ['process, when', 'VmRSS', 'RssAnon', 'malloc', 'glibc arenas', 'other anon', 'RssFile', 'threads'],
  [...r.references.map((s) => row(s)), ...r.agent.map((s) => row(s, `\`node ${UNIT_FLAGS.join(' ')} … cairn-agent run\` (the systemd unit): `)), ...r.diagnostic.map((s) => row(s, 'for comparison, plain `node … cairn-agent run`: '))],
)}`,
    };
  },
};

/** One agent process through its life: connected, model committed, then after each checkpoint of inferences. */
async function measureAgent(hub: BenchHub, model: string, stateDir: string, nodeOptions: string[], checkpoints: number[]): Promise<{ samples: Sample[]; failed: number }> {
  const deviceId = `bench-memory-${nodeOptions.length === 0 ? 'plain' : 'unit'}`;
  const agent = await spawnAgent({ hub, deviceId, stateDir, nodeOptions, config: { health: { trial: { durationMs: 2000 } } } });
  const sample = (when: string, loaded: boolean): Sample => ({ when, loaded, memory: procMemory(agent.pid), breakdown: procAnonBreakdown(agent.pid) });
  try {
    const api = await agent.apiUrl();
    const bodies = inferBodies();
    await sleep(SETTLE_MS);
    const samples = [sample('connected, no model', false)];

    // The trial commits after 2 s and 20 inferences: light traffic until it has.
    const deploymentId = await hub.deploy(model, [deviceId]);
    await until('the model to serve', async () => ((await (await fetch(`${api}/healthz`)).json()) as { status: string }).status === 'ok');
    let inferences = 0;
    let failed = 0;
    while (!hub.ended(deviceId, deploymentId)) {
      failed += await closedLoop(api, bodies, 20, 1);
      inferences += 20;
    }
    const outcome = hub.ended(deviceId, deploymentId)!;
    if (outcome.phase !== 'committed') throw new Error(`the int8 model did not commit: ${JSON.stringify(outcome)}`);
    await sleep(SETTLE_MS);
    samples.push(sample('int8 model committed', true));

    for (const checkpoint of checkpoints) {
      failed += await closedLoop(api, bodies, checkpoint - inferences, 4);
      inferences = checkpoint;
      await sleep(SETTLE_MS);
      samples.push(sample(`after ${checkpoint.toLocaleString('en')} inferences`, true));
    }
    return { samples, failed };
  } finally {
    await agent.stop();
  }
}
