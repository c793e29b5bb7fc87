/**
 * The fleet simulator at 1,000 devices: a simulator process (1,000 real agents sharing one
 * model runtime) against a hub in the bench process. Measured on the simulator process alone:
 *
 * - time from its start until the hub sees every device online;
 * - CPU (user + system, all threads, from /proc/<pid>/stat) and memory (/proc/<pid>/status)
 *   over a window with no model deployed (connections, presence, telemetry), then over a window
 *   with the int8 model committed (each serving device adds one vibration window per source
 *   interval: feature extraction on the shared event loop, inference on the shared worker);
 * - whether every device reported: online, telemetry summaries in the loaded window, and the
 *   inferences they count against what the source interval implies for the serving devices.
 *
 * The model is first deployed to all 1,000 devices at once, as `cairn deploy` would, and how
 * that ends is recorded: the agents' golden probes all queue on the one event loop and the one
 * shared worker (probes are judged on their compute time in the worker, not on that queue).
 * For the loaded window the model is then deployed again (a new deployment, so nothing is
 * quarantined) in waves of 25 devices, each wave past its probes before the next starts, as a
 * staged rollout would; devices whose wave still fails stay without a model and are counted.
 *
 * Two runs: the bench's simulator entry with a realistic 5 s source interval, and
 * `cairn-agent simulate` as shipped (its source interval is fixed at 1 s; there is no flag).
 *
 * `CAIRN_BENCH_FLEET_DEVICES` sets another fleet size (default 1,000), for a machine that
 * cannot host 1,000 agents next to other work; the report names the size it ran.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { DeploymentStatusT } from '@cairn/shared';
import { procCpuSeconds, procMemory, stopChild, type ProcMemory } from '../lib/proc.js';
import { epochMs, mbOfKib, ms, sleep, until } from '../lib/stats.js';
import { AGENT_CLI } from '../lib/paths.js';
import { startBenchHub, type BenchHub } from '../lib/world.js';
import { table, type Benchmark } from '../lib/report.js';

const DEVICES = fleetSize(process.env['CAIRN_BENCH_FLEET_DEVICES']);
const WAVE = 25;
const IDLE_WINDOW_MS = 30_000;
const LOADED_WINDOW_MS = 60_000;
const SIM_ENTRY = fileURLToPath(new URL('./fleet-sim.js', import.meta.url));
const simId = (i: number): string => `sim-${String(i + 1).padStart(4, '0')}`;

function fleetSize(value: string | undefined): number {
  if (value === undefined) return 1000;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 9999) throw new RangeError(`CAIRN_BENCH_FLEET_DEVICES must be an integer from 1 to 9999, got ${value}`);
  return n;
}

interface FleetRun {
  label: string;
  sourceIntervalMs: number;
  command: (hubUrl: string, stateRoot: string) => string[];
}

const RUNS: FleetRun[] = [
  { label: 'simulateFleet, source every 5 s', sourceIntervalMs: 5000, command: (hub, state) => [SIM_ENTRY, hub, String(DEVICES), state, '5000'] },
  { label: '`cairn-agent simulate` (source every 1 s)', sourceIntervalMs: 1000, command: (hub, state) => [AGENT_CLI, 'simulate', '--hub', hub, '--devices', String(DEVICES), '--state', state, '--log-level', 'warn'] },
];

interface Window {
  seconds: number;
  /** CPU seconds per wall second: 1 = one core busy. */
  cores: number;
  memory: ProcMemory;
}

/** How a deployment ended on the devices it targeted: count per `phase` or `phase: reason`, one message per reason, and how long it took. */
interface Rollout {
  ms: number;
  outcomes: Record<string, number>;
  examples: Record<string, string>;
}

export interface FleetRunResult {
  label: string;
  devices: number;
  sourceIntervalMs: number;
  /** Simulator started → the hub sees every device online. */
  connectMs: number;
  /** One deployment to every device at once. */
  allAtOnce: Rollout;
  /** A new deployment in waves of WAVE devices. */
  waves: Rollout;
  idle: Window;
  loaded: Window;
  /** At the end of the loaded window. */
  online: number;
  /** Devices with telemetry during the loaded window, and the inferences they counted against what the source interval implies for the devices serving. */
  reportingTelemetry: number;
  inferences: number;
  expectedInferences: number;
}

export type FleetResult = FleetRunResult[];

/** Per-device share of a process total, in kB (10³ bytes). */
const kbPerDevice = (kib: number, devices: number): string => `${((mbOfKib(kib) * 1000) / devices).toFixed(0)} kB`;
const outcomes = (r: Rollout): string => Object.entries(r.outcomes).map(([k, n]) => `${n} ${k}`).join(', ');

export const fleet: Benchmark<FleetResult> = {
  name: 'fleet',
  async run(workDir) {
    const results: FleetResult = [];
    for (const [i, spec] of RUNS.entries()) results.push(await runFleet(spec, join(workDir, `run-${i}`)));
    return results;
  },

  report(runs) {
    const perDevice = (w: Window, devices: number) => `${((w.cores * 1000) / devices).toFixed(3)} ms CPU/s, ${kbPerDevice(w.memory.vmRss, devices)} VmRSS, ${kbPerDevice(w.memory.rssAnon, devices)} RssAnon`;
    const rows = runs.flatMap((r) =>
      (['idle', 'loaded'] as const).map((k) => [
        r.label,
        k === 'idle' ? `no model, ${r[k].seconds.toFixed(0)} s` : `int8 committed, ${r[k].seconds.toFixed(0)} s`,
        r[k].cores.toFixed(3),
        `${((r[k].cores * 1000) / r.devices).toFixed(3)} ms/s`,
        `${(mbOfKib(r[k].memory.vmRss)).toFixed(0)} MB / ${(mbOfKib(r[k].memory.rssAnon)).toFixed(0)} MB`,
        `${kbPerDevice(r[k].memory.vmRss, r.devices)} / ${kbPerDevice(r[k].memory.rssAnon, r.devices)}`,
        k === 'idle' ? '—' : `${r.online} online, ${r.reportingTelemetry} sent telemetry, ${r.inferences} of ${r.expectedInferences} inferences`,
      ]),
    );
    return {
      targets: runs.flatMap((r) => [
        { what: `Fleet simulator, ${r.devices} devices, ${r.label}: per device with the int8 model serving`, measured: perDevice(r.loaded, r.devices), target: 'report', met: null },
        {
          what: `Fleet simulator, ${r.label}: every device online and sending telemetry`,
          measured: `all online after ${ms(r.connectMs)}; at the end ${r.online} online, ${r.reportingTelemetry} sent telemetry`,
          target: `all ${r.devices}`,
          met: r.online === r.devices && r.reportingTelemetry === r.devices,
        },
        {
          what: `Fleet simulator, ${r.label}: \`POST /api/v1/deployments\` of the int8 model to all ${r.devices} at once`,
          measured: outcomes(r.allAtOnce),
          target: `${r.devices} committed`,
          met: r.allAtOnce.outcomes['committed'] === r.devices,
        },
      ]),
      details: `**Fleet simulator** (a separate process; the hub runs in the bench process). CPU is the user + system time of the simulator process per wall second (1.000 = one core); per device, ms of CPU per second and kB (10³ bytes) of memory.

${table(['run', 'window', 'CPU (cores)', 'CPU per device', 'VmRSS / RssAnon', 'per device (VmRSS / RssAnon)', 'reported'], rows)}

${table(
  ['run', 'all online after', 'deploy to all at once', `deploy again in waves of ${WAVE}`],
  runs.map((r) => [r.label, ms(r.connectMs), `${outcomes(r.allAtOnce)} after ${ms(r.allAtOnce.ms)}`, `${outcomes(r.waves)} after ${ms(r.waves.ms)}`]),
)}

${[...new Set(runs.flatMap((r) => [...Object.values(r.allAtOnce.examples), ...Object.values(r.waves.examples)]))].map((m) => `- ${m}`).join('\n')}`,
    };
  },
};

async function runFleet(spec: FleetRun, dir: string): Promise<FleetRunResult> {
  const hub = await startBenchHub(join(dir, 'hub'));
  let sim: ChildProcess | null = null;
  try {
    const model = await hub.publish('pdm-vibration-1.0.0-int8');
    const started = epochMs();
    sim = spawn(process.execPath, spec.command(hub.hub.httpUrl, join(dir, 'devices')), { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CAIRN_AGENT_ENROLLMENT_TOKEN: hub.enrollmentToken } });
    const child = sim;
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
    const online = () => hub.hub.ctx.devices.list().filter((d) => d.online).length;
    await until(`${DEVICES} devices online`, () => {
      if (child.exitCode !== null) throw new Error(`the simulator exited (${child.exitCode}): ${stderr}`);
      return online() === DEVICES;
    }, 600_000, 100).catch((err: Error) => {
      throw new Error(`${err.message} (${online()} of ${DEVICES} online)`);
    });
    const connectMs = epochMs() - started;

    const idle = await measure(child.pid!, IDLE_WINDOW_MS);

    const ids = Array.from({ length: DEVICES }, (_, i) => simId(i));
    const allAtOnce = await rollout(hub, model, ids);
    const waves = await rollout(hub, model, ids, WAVE);

    const windowStart = Date.now();
    const loaded = await measure(child.pid!, LOADED_WINDOW_MS);
    const windowEnd = Date.now();
    const { reporting, inferences } = telemetryBetween(hub, ids, windowStart, windowEnd);
    const serving = waves.outcomes['committed'] ?? 0;
    return {
      label: spec.label,
      devices: DEVICES,
      sourceIntervalMs: spec.sourceIntervalMs,
      connectMs,
      allAtOnce,
      waves,
      idle,
      loaded,
      online: online(),
      reportingTelemetry: reporting,
      inferences,
      expectedInferences: Math.round((serving * (windowEnd - windowStart)) / spec.sourceIntervalMs),
    };
  } finally {
    await stopChild(sim);
    await hub.close();
  }
}

const PAST_PROBES = new Set(['trial', 'committed', 'failed', 'rolled_back']);

/**
 * Deploys `model` to `ids` — at once, or in waves of `wave` devices, each wave past its golden
 * probes (on trial, or ended) before the next is deployed — and waits until every device has
 * ended its deployment.
 */
async function rollout(hub: BenchHub, model: string, ids: string[], wave = ids.length): Promise<Rollout> {
  const started = epochMs();
  const deploymentOf = new Map<string, string>();
  for (let i = 0; i < ids.length; i += wave) {
    const devices = ids.slice(i, i + wave);
    const deploymentId = await hub.deploy(model, devices);
    for (const device of devices) deploymentOf.set(device, deploymentId);
    if (i + wave < ids.length) {
      await until(`wave ${i / wave + 1} past its probes`, () => devices.every((d) => PAST_PROBES.has(hub.reported(d, deploymentId)?.phase ?? '')), 600_000, 100);
    }
  }
  const ended = await until('every device to end its deployment', () => {
    const all = ids.map((d) => hub.ended(d, deploymentOf.get(d)!));
    return all.every((d) => d !== null) ? (all as DeploymentStatusT[]) : null;
  }, 900_000, 500);
  const outcomes: Record<string, number> = {};
  const examples: Record<string, string> = {};
  for (const d of ended) {
    const key = d.reason ? `${d.phase}: ${d.reason}` : d.phase;
    outcomes[key] = (outcomes[key] ?? 0) + 1;
    if (d.reason) examples[key] ??= `${key} — ${d.message ?? ''}`;
  }
  return { ms: epochMs() - started, outcomes, examples };
}

/** CPU cores used by `pid` over `windowMs`, and its memory at the end. */
async function measure(pid: number, windowMs: number): Promise<Window> {
  const cpu0 = procCpuSeconds(pid);
  const t0 = performance.now();
  await sleep(windowMs);
  const seconds = (performance.now() - t0) / 1000;
  return { seconds, cores: (procCpuSeconds(pid) - cpu0) / seconds, memory: procMemory(pid) };
}

/**
 * Telemetry summaries stamped inside [from, to) by the agents' clocks: how many devices sent
 * one, and the inferences they count. A summary covers the interval before its stamp, so the
 * first one in the window also counts a little from before it; over 60 s and 10 s summaries the
 * edges roughly cancel.
 */
function telemetryBetween(hub: BenchHub, ids: string[], from: number, to: number): { reporting: number; inferences: number } {
  let reporting = 0;
  let inferences = 0;
  for (const id of ids) {
    const points = hub.hub.ctx.telemetry.range(id, from, to, 10_000);
    if (points.length > 0) reporting++;
    for (const p of points) inferences += p.inferences;
  }
  return { reporting, inferences };
}
