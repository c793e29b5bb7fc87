/**
 * System-test infrastructure: the real `cairn` (hub and CLI) and `cairn-agent` executables as
 * separate processes, their output captured, SIGKILLed when the test ends if still running.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { TestContext } from 'node:test';
import { waitFor } from './wait.js';

export const ROOT = resolve(import.meta.dirname, '../../..');
export const CAIRN = join(ROOT, 'hub/dist/cli/main.js');
export const CAIRN_AGENT = join(ROOT, 'agent/dist/cli/main.js');
export const IMAGES = join(ROOT, 'firmware-images');
const run = promisify(execFile);

export interface Proc {
  child: ChildProcess;
  /** Everything the process wrote so far, stdout and stderr interleaved. */
  output: () => string;
  exited: Promise<number | null>;
}

/** Spawns `node <args>` (node flags first, then the script) with `env` over this process's environment; stdin piped on request. */
export function spawnLogged(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}, stdin: 'ignore' | 'pipe' = 'ignore'): Proc {
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: [stdin, 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, output: () => output, exited };
}

export async function kill9(p: Proc): Promise<void> {
  p.child.kill('SIGKILL');
  await p.exited;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/** The pino JSON lines of `output` whose message is `msg`. */
export function logLines(output: string, msg: string): Array<Record<string, any>> {
  return output
    .split('\n')
    .filter((line) => line.startsWith('{') && line.includes(`"msg":${JSON.stringify(msg)}`))
    .map((line) => JSON.parse(line) as Record<string, any>);
}

/** The agent's `health.trial` settings a system test chooses. */
export interface TrialDefaults {
  durationMs: number;
  minInferences: number;
  /** Candidate latency at most this is never a regression: on a shared 2-core machine, millisecond comparisons are noise. */
  latencyFloorMs?: number;
}

export interface System {
  dir: string;
  /** The hub's data directory. */
  dataDir: string;
  /** Starts the hub (fixed ports: a restarted hub is found at the same address). */
  hub: () => Promise<Proc>;
  /** Runs the `cairn` CLI with `--json` and returns its parsed output. */
  cli: (...args: string[]) => Promise<any>;
  api: <T>(path: string) => Promise<T>;
  /**
   * Writes an agent config for the device (state in `<dir>/agent-state`) with these trial
   * defaults (`health.trial`) and returns its path.
   */
  agentConfig: (trial: TrialDefaults, logLevel?: string) => string;
  agentStateDir: string;
}

/** A temp directory, a hub data directory with keys (the hub ran once for them) and an agent config for `deviceId`. */
export async function startSystem(t: TestContext, deviceId: string): Promise<System> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-system-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'hub-data');
  const [httpPort, mqttPort] = [await freePort(), await freePort()];
  const hubUrl = `http://127.0.0.1:${httpPort}`;
  const hub = async () => {
    const p = spawnLogged(t, [CAIRN, 'hub', '--data', dataDir, '--http', String(httpPort), '--mqtt', String(mqttPort), '--log-level', 'warn']);
    await waitFor('hub banner', () => /API (http:\/\/\S+)/.exec(p.output()), { timeoutMs: 60_000 });
    return p;
  };
  const cli = async (...args: string[]) => JSON.parse((await run(process.execPath, [CAIRN, ...args, '--hub', hubUrl, '--data', dataDir, '--json'])).stdout);
  const api = async <T>(path: string): Promise<T> => {
    const token = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
    const res = await fetch(`${hubUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    return (await res.json()) as T;
  };
  let configs = 0;
  const agentConfig = (trial: TrialDefaults, logLevel = 'info') => {
    const file = join(dir, `agent-${++configs}.yaml`);
    writeFileSync(
      file,
      [
        `deviceId: ${deviceId}`,
        'stateDir: ./agent-state',
        `mqttUrl: mqtt://127.0.0.1:${mqttPort}`,
        `rootPublicKey: "${rootKey}"`,
        'labels: { site: plant-4, machine: P-101 }',
        'api: false',
        'telemetryIntervalMs: 500',
        // A pump with an outer-race defect: the model sees it, the rules raise alerts.
        'source: { kind: simulated, intervalMs: 100, machine: pump-1800, fault: outer_race, severity: 0.8 }',
        'rules: { cooldownMs: 5000 }',
        `health: { trial: ${JSON.stringify(trial)} }`,
        `logLevel: ${logLevel}`,
        `enrollment: { hubUrl: "${hubUrl}", token: "${enrollToken}" }`,
      ].join('\n'),
    );
    return file;
  };
  let rootKey = '';
  let enrollToken = '';
  const first = await hub();
  t.after(() => kill9(first).catch(() => undefined));
  rootKey = ((await (await fetch(`${hubUrl}/api/v1/trust`)).json()) as { rootPublicKey: string }).rootPublicKey;
  enrollToken = (await cli('device', 'enroll-token')).token;
  first.child.kill('SIGTERM');
  await first.exited;
  return { dir, dataDir, hub, cli, api, agentConfig, agentStateDir: join(dir, 'agent-state') };
}
