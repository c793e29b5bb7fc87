/**
 * Memory over 100 successive model swaps in one agent process, through the real hub → agent
 * path: the hub deploys `pdm-vibration@1.1.0` and `@1.0.0` (int8) alternately to one
 * `cairn-agent run` process; each deployment is verified, loaded in a fresh worker beside the
 * serving one, probed, served on a short trial (300 ms, 5 inferences; the simulated source
 * feeds a vibration window every 20 ms) and committed, and the previous model's worker is
 * terminated. After the first two downloads both blobs stay in the A/B slots, so every later
 * swap loads from disk. VmRSS, RssAnon, the malloc/V8 split, glibc's arena count and the thread
 * count come from /proc after each swap (after a 1 s settle at every tenth).
 *
 * As a diagnostic only, the same 100 swaps run again in a second agent with
 * `MALLOC_ARENA_MAX=2`: glibc keeps the arenas of exited threads (every swap's worker and its
 * onnxruntime allocations get one) for reuse, and this caps how many there can be.
 */
import { join } from 'node:path';
import { procAnonBreakdown, procMemory, type AnonBreakdown, type ProcMemory } from '../lib/proc.js';
import { distribution, mb, mbOfKib, ms, sleep, until, type Distribution } from '../lib/stats.js';
import { spawnAgent, startBenchHub, type BenchHub } from '../lib/world.js';
import { table, type Benchmark } from '../lib/report.js';

const SWAPS = 100;
const GROWTH_TARGET_MB = 15;
const SETTLE_MS = 1000;
const TABLE_AT = [0, 10, 50, 100];
const DIAGNOSTIC_ENV = { MALLOC_ARENA_MAX: '2' };

interface Sample {
  /** After swap n (0 = the first model committed). */
  swap: number;
  settled: boolean;
  memory: ProcMemory;
  breakdown: AnonBreakdown;
}

interface SwapRun {
  samples: Sample[];
  /** Count per outcome (`committed`, or `phase: reason`). */
  outcomes: Record<string, number>;
  /** Swaps whose trial did not commit, and why. */
  rollbacks: Array<{ swap: number; reason: string | null; message: string | null }>;
  /** Deployment posted → the hub sees it ended. */
  swapMs: Distribution;
}

export interface SwapsResult {
  agent: SwapRun;
  diagnostic: SwapRun;
}

export const swaps: Benchmark<SwapsResult> = {
  name: 'swaps',
  async run(workDir) {
    const hub = await startBenchHub(join(workDir, 'hub'));
    try {
      const models = [await hub.publish('pdm-vibration-1.0.0-int8'), await hub.publish('pdm-vibration-1.1.0-int8')];
      return {
        agent: await swapRun(hub, models, join(workDir, 'agent'), {}),
        diagnostic: await swapRun(hub, models, join(workDir, 'diagnostic'), DIAGNOSTIC_ENV),
      };
    } finally {
      await hub.close();
    }
  },

  report({ agent, diagnostic }) {
    const at = (run: SwapRun, swap: number) => run.samples.find((s) => s.swap === swap)!;
    const growth = (run: SwapRun, field: 'vmRss' | 'rssAnon', from = 0, to = SWAPS) => at(run, to).memory[field] - at(run, from).memory[field];
    const rollbacks = [...agent.rollbacks, ...diagnostic.rollbacks].map((f) => `swap ${f.swap}: \`${f.reason ?? '?'}\` — ${f.message ?? ''}`);
    const outcomes = (run: SwapRun) => Object.entries(run.outcomes).map(([k, v]) => `${v} ${k}`).join(', ');
    const rows = (run: SwapRun, label: string) =>
      TABLE_AT.map((n) => {
        const { memory: m, breakdown: b } = at(run, n);
        return [label, String(n), mb(m.vmRss), mb(m.rssAnon), mb(b.malloc), String(b.arenas), mb(b.other), mb(m.rssFile), String(m.threads)];
      });
    return {
      targets: [
        {
          what: `VmRSS growth over ${SWAPS} swaps, hub → agent (RssAnon growth)`,
          measured: `${mb(growth(agent, 'vmRss'))} (${mb(growth(agent, 'rssAnon'))})`,
          target: `≤ ${GROWTH_TARGET_MB} MB`,
          met: mbOfKib(growth(agent, 'vmRss')) <= GROWTH_TARGET_MB,
        },
      ],
      details: `**${SWAPS} swaps in one agent process** through the hub (1.0.0 ⇄ 1.1.0 int8, 300 ms trials of at least 5 inferences under a 50 Hz simulated source; samples 1 s after every tenth swap). Outcomes: ${outcomes(agent)} (diagnostic run: ${outcomes(diagnostic)}); deployment posted → trial ended p50 ${ms(agent.swapMs.p50)}, p99 ${ms(agent.swapMs.p99)}. VmRSS growth swaps 0→10 ${mb(growth(agent, 'vmRss', 0, 10))}, 10→50 ${mb(growth(agent, 'vmRss', 10, 50))}, 50→100 ${mb(growth(agent, 'vmRss', 50, 100))}; with \`MALLOC_ARENA_MAX=2\` (diagnostic) 0→100 ${mb(growth(diagnostic, 'vmRss'))}.${rollbacks.length > 0 ? `\n\nRolled back: ${rollbacks.join('; ')}` : ''}

${table(
  ['agent', 'after swap', 'VmRSS', 'RssAnon', 'malloc', 'glibc arenas', 'other anon', 'RssFile', 'threads'],
  [...rows(agent, '`cairn-agent run`'), ...rows(diagnostic, 'diagnostic, `MALLOC_ARENA_MAX=2`')],
)}`,
    };
  },
};

/** One agent process through SWAPS + 1 deployments (the first loads the initial model). */
async function swapRun(hub: BenchHub, models: string[], stateDir: string, env: Record<string, string>): Promise<SwapRun> {
  const deviceId = `bench-swaps-${Object.keys(env).length === 0 ? 'default' : 'diagnostic'}`;
  const agent = await spawnAgent({
    hub,
    deviceId,
    stateDir,
    env,
    config: { source: { kind: 'simulated', intervalMs: 20, machine: 'pump-1800' }, health: { trial: { durationMs: 300, minInferences: 5 } }, logLevel: 'warn' },
  });
  try {
    const samples: Sample[] = [];
    const outcomes: Record<string, number> = {};
    const rollbacks: SwapRun['rollbacks'] = [];
    const durations: number[] = [];
    for (let swap = 0; swap <= SWAPS; swap++) {
      const started = performance.now();
      const deploymentId = await hub.deploy(models[swap % 2]!, [deviceId]);
      const outcome = await until(`swap ${swap} to end`, () => hub.ended(deviceId, deploymentId), 120_000, 5);
      if (swap === 0 && outcome.phase !== 'committed') throw new Error(`the first model did not commit: ${JSON.stringify(outcome)}`);
      if (swap > 0) {
        durations.push(performance.now() - started);
        const key = outcome.phase === 'committed' ? 'committed' : `${outcome.phase}: ${outcome.reason ?? '?'}`;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
        if (outcome.phase !== 'committed') rollbacks.push({ swap, reason: outcome.reason ?? null, message: outcome.message ?? null });
      }
      const settled = swap % 10 === 0;
      if (settled) await sleep(SETTLE_MS);
      samples.push({ swap, settled, memory: procMemory(agent.pid), breakdown: procAnonBreakdown(agent.pid) });
    }
    return { samples, outcomes, rollbacks, swapMs: distribution(durations) };
  } finally {
    await agent.stop();
  }
}
