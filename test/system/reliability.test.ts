/**
 * Reliability with real processes (issue: agent safe activation): the `cairn` hub and a
 * `cairn-agent` as separate processes, killed with SIGKILL.
 *
 * - A 60 s hub (and so broker) outage with the agent killed and restarted in the middle of it:
 *   after the hub is back, the hub holds every telemetry seq without a gap and every event
 *   both agent processes queued (maintenance alerts raised offline included).
 * - kill -9 during a trial: the restarted agent serves the committed model and the hub learns
 *   `rolled_back / crashed_in_trial`; kill -9 after the commit: it serves the new model.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { sleep, waitFor } from '../helpers/wait.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const CAIRN = join(ROOT, 'hub/dist/cli/main.js');
const CAIRN_AGENT = join(ROOT, 'agent/dist/cli/main.js');
const IMAGES = join(ROOT, 'firmware-images');
const OUTAGE_MS = 60_000;
const run = promisify(execFile);

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function spawnLogged(t: TestContext, args: string[]): Proc {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
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

async function kill9(p: Proc): Promise<void> {
  p.child.kill('SIGKILL');
  await p.exited;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

interface Setup {
  dir: string;
  hub: () => Promise<Proc>;
  cli: (...args: string[]) => Promise<any>;
  api: <T>(path: string) => Promise<T>;
  agentConfig: (trial: { durationMs: number; minInferences: number }) => string;
}

async function setup(t: TestContext, deviceId: string): Promise<Setup> {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-reliability-'));
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
  const agentConfig = (trial: { durationMs: number; minInferences: number }) => {
    const file = join(dir, `agent-${trial.durationMs}.yaml`);
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
        `health: { trial: { durationMs: ${trial.durationMs}, minInferences: ${trial.minInferences} } }`,
        'logLevel: info',
      ].join('\n'),
    );
    return file;
  };
  let rootKey = '';
  const first = await hub();
  t.after(() => kill9(first).catch(() => undefined));
  rootKey = ((await (await fetch(`${hubUrl}/api/v1/trust`)).json()) as { rootPublicKey: string }).rootPublicKey;
  first.child.kill('SIGTERM');
  await first.exited;
  return { dir, hub, cli, api, agentConfig };
}

/** Event ids an agent process logged as queued (pino JSON lines). */
function queuedEventIds(output: string): string[] {
  return output
    .split('\n')
    .filter((line) => line.includes('"event queued"'))
    .map((line) => (JSON.parse(line) as { eventId: string }).eventId);
}

test('a 60 s hub outage with an agent kill -9 in the middle loses no telemetry seq and no event', async (t) => {
  const s = await setup(t, 'pump-7');
  let hub = await s.hub();
  await s.cli('model', 'push', join(IMAGES, 'pdm-vibration-1.0.0-int8'));
  const config = s.agentConfig({ durationMs: 1000, minInferences: 5 });
  const agents = [spawnLogged(t, [CAIRN_AGENT, 'run', '--config', config])];
  await waitFor('pump-7 online', async () => (await s.cli('device', 'show', 'pump-7')).online === true, { timeoutMs: 60_000 });
  const deployment = await s.cli('deploy', '--model', 'pdm-vibration@1.0.0', '--device', 'pump-7');
  await waitFor('committed', async () => (await s.cli('deployment', 'show', deployment.id)).devices[0].state === 'committed', { timeoutMs: 60_000 });
  await waitFor('a maintenance alert at the hub', async () => (await s.api<{ events: Array<{ type: string }> }>('/api/v1/devices/pump-7/events')).events.some((e) => e.type === 'maintenance_alert'), { timeoutMs: 60_000 });

  // The outage: the hub and its broker die; halfway through, so does the agent.
  await kill9(hub);
  const outageStart = Date.now();
  await sleep(OUTAGE_MS / 2);
  await kill9(agents[0]!);
  agents.push(spawnLogged(t, [CAIRN_AGENT, 'run', '--config', config]));
  await waitFor('the restarted agent serves offline', () => agents[1]!.output().includes('serving the persisted bundle'), { timeoutMs: 60_000 });
  await sleep(Math.max(0, OUTAGE_MS - (Date.now() - outageStart)));
  hub = await s.hub();
  const back = Date.now();

  type Point = { seq: number; ts: number };
  const points = await waitFor(
    'telemetry produced after the hub came back',
    async () => {
      const r = await s.api<{ points: Point[] }>('/api/v1/devices/pump-7/telemetry?limit=10000');
      return r.points.some((p) => p.ts > back + 1000) ? r.points : null;
    },
    { timeoutMs: 90_000 },
  );
  const seqs = points.map((p) => p.seq).sort((a, b) => a - b);
  const gaps = seqs.filter((seq, i) => i > 0 && seq !== seqs[i - 1]! + 1);
  assert.deepEqual(gaps, [], `telemetry seqs ${seqs[0]}..${seqs.at(-1)} have gaps`);
  assert.ok(
    points.some((p) => p.ts > outageStart + 1000 && p.ts < back - 1000),
    'summaries taken during the outage reached the hub',
  );

  const queued = [...queuedEventIds(agents[0]!.output()), ...queuedEventIds(agents[1]!.output())];
  assert.ok(queued.length > 0);
  const stored = await waitFor(
    'every queued event at the hub',
    async () => {
      const ids = new Set((await s.api<{ events: Array<{ eventId: string }> }>('/api/v1/devices/pump-7/events?limit=1000')).events.map((e) => e.eventId));
      return queued.every((id) => ids.has(id)) ? ids : null;
    },
    { timeoutMs: 60_000 },
  );
  const alerts = (await s.api<{ events: Array<{ type: string; ts: number; alert?: { machine: string; faultClass: string } }> }>('/api/v1/devices/pump-7/events?limit=1000')).events.filter(
    (e) => e.type === 'maintenance_alert',
  );
  assert.ok(alerts.some((a) => a.ts > outageStart && a.ts < back), 'alerts raised during the outage were delivered');
  assert.ok(alerts.every((a) => a.alert?.machine === 'P-101' && a.alert.faultClass === 'outer_race'));
  assert.ok(stored.size >= queued.length);
});

test('kill -9 during a trial rolls back to the committed model; kill -9 after a commit keeps the new one', async (t) => {
  const s = await setup(t, 'pump-8');
  await s.hub();
  await s.cli('model', 'push', join(IMAGES, 'pdm-vibration-1.0.0-int8'));
  await s.cli('model', 'push', join(IMAGES, 'pdm-vibration-1.1.0-int8'));
  const quick = s.agentConfig({ durationMs: 1000, minInferences: 5 });
  const long = s.agentConfig({ durationMs: 600_000, minInferences: 5 });
  let agent = spawnLogged(t, [CAIRN_AGENT, 'run', '--config', quick]);
  await waitFor('pump-8 online', async () => (await s.cli('device', 'show', 'pump-8')).online === true, { timeoutMs: 60_000 });
  const v1 = await s.cli('deploy', '--model', 'pdm-vibration@1.0.0', '--device', 'pump-8');
  await waitFor('1.0.0 committed', async () => (await s.cli('deployment', 'show', v1.id)).devices[0].state === 'committed', { timeoutMs: 60_000 });

  await kill9(agent);
  agent = spawnLogged(t, [CAIRN_AGENT, 'run', '--config', long]);
  const v2 = await s.cli('deploy', '--model', 'pdm-vibration@1.1.0', '--device', 'pump-8');
  await waitFor('1.1.0 on trial', async () => (await s.cli('deployment', 'show', v2.id)).devices[0].state === 'trial', { timeoutMs: 60_000 });
  await kill9(agent);
  agent = spawnLogged(t, [CAIRN_AGENT, 'run', '--config', quick]);
  const device = await waitFor(
    'the hub learns of the rollback',
    async () => {
      const d = await s.cli('device', 'show', 'pump-8');
      return d.online && d.deployment?.phase === 'rolled_back' ? d : null;
    },
    { timeoutMs: 60_000 },
  );
  assert.equal(device.deployment.reason, 'crashed_in_trial');
  assert.equal(device.active.version, '1.0.0', 'the committed model serves after the crash');

  // A new deployment of the same bundle is explicit: it is tried again, and this time it commits.
  const v3 = await s.cli('deploy', '--model', 'pdm-vibration@1.1.0', '--device', 'pump-8');
  await waitFor('1.1.0 committed', async () => (await s.cli('deployment', 'show', v3.id)).devices[0].state === 'committed', { timeoutMs: 60_000 });
  await kill9(agent);
  agent = spawnLogged(t, [CAIRN_AGENT, 'run', '--config', quick]);
  await waitFor('1.1.0 serves after kill -9', async () => {
    const d = await s.cli('device', 'show', 'pump-8');
    return d.online && d.active?.version === '1.1.0' && agent.output().includes('serving the persisted bundle');
  }, { timeoutMs: 60_000 });
});
