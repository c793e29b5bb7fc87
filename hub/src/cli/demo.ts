/**
 * `cairn demo`: one command that shows Cairn working — a hub with its embedded broker and
 * console, a simulated fleet in the same process, and a model deployed to every device.
 * State lives in the demo's data directory, so a second run resumes where the first stopped.
 */
import { join } from 'node:path';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createCertificateAuthority, issueCertificate } from './certificates.js';
import { pino } from 'pino';
import { simDeviceId, simMachines, simulateFleet } from '@cairn/agent/sim/fleet.js';
import { loadHubConfig } from '../infra/config.js';
import { startHub } from '../server.js';
import { HubClient, ApiError } from './hub-client.js';
import { publishImage } from './image-dir.js';
import { startDemoWebhookReceiver } from './demo-webhook-receiver.js';
import { fileURLToPath } from 'node:url';

export interface DemoOptions {
  devices: number;
  dataDir: string;
  httpPort: number;
  mqttPort: number;
  logLevel: string;
  /** HTTPS and MQTT over TLS with a demo CA made on first use in `<dataDir>/tls` (openssl). */
  tls: boolean;
}

const DEMO_MODEL = 'pdm-vibration';
const DEMO_TRIAL_MS = 10_000;
const DEMO_SOURCE_INTERVAL_MS = 250;
const DEMO_DRIFT_ONSET_MS = 3 * 60_000;
const IMAGES_DIR = fileURLToPath(new URL('../../../firmware-images', import.meta.url));
/** Approved by the demo's second operator, so they may go to the whole fleet (four eyes). */
const DEMO_APPROVED = ['1.0.0', '1.1.0'];
const DEMO_REVIEWER = 'reviewer';
const DEMO_IMAGES = ['pdm-vibration-1.0.0-int8', 'pdm-vibration-1.1.0-int8', 'pdm-vibration-1.0.1-nan', 'pdm-vibration-1.0.1-slow', 'pdm-vibration-1.0.1-collapsed'];

export async function runDemo(options: DemoOptions): Promise<void> {
  if (!Number.isInteger(options.devices) || options.devices < 1 || options.devices > 5000) throw new Error('--devices must be an integer from 1 to 5000');
  const tls = options.tls ? demoCertificates(join(options.dataDir, 'tls')) : null;
  if (tls && process.env.NODE_EXTRA_CA_CERTS !== tls.ca) return rerunTrusting(tls.ca);
  const say = (line: string) => console.log(`[demo] ${line}`);
  // The plant's maintenance system: work orders reach it through a signed webhook.
  const receiver = await startDemoWebhookReceiver(({ type, data }) => {
    if (type !== 'work_order.opened') return;
    const where = data['machine'] === data['deviceId'] ? String(data['deviceId']) : `${String(data['machine'])} (${String(data['deviceId'])})`;
    say(`WORK ORDER received by the maintenance system (webhook): ${where}, ${String(data['faultClass'])}, confidence ${String(data['confidence'])}`);
  });
  const config = loadHubConfig({
    overrides: {
      webhooks: { endpoints: [{ name: 'demo-maintenance', url: receiver.url, secret: receiver.secret, events: ['work_order.opened', 'work_order.acknowledged', 'work_order.done'] }] },
      dataDir: options.dataDir,
      logLevel: options.logLevel as 'warn',
      http: { port: options.httpPort },
      mqtt: { port: options.mqttPort },
      ...(tls ? { tls: { cert: tls.cert, key: tls.key } } : {}),
    },
  });
  const hub = await startHub(config);
  say(`hub listening: API ${hub.httpUrl}, MQTT ${hub.mqttUrl}`);
  const token = readFileSync(hub.adminToken.tokenFile, 'utf8').trim();
  const api = new HubClient(hub.httpUrl, token);

  // The reference images: the int8 default of 1.0.0 and 1.1.0, and the faulty variants for
  // rollback drills. The hub signs each with its own release key.
  for (const id of DEMO_IMAGES) {
    try {
      const published = await publishImage(api, join(IMAGES_DIR, id));
      say(`published ${published.name}@${published.version} from firmware-images/${id}`);
    } catch (err) {
      if (!(err instanceof ApiError && err.code === 'CAIRN_MODEL_EXISTS')) throw err;
    }
  }

  await approveAsReviewer(api, hub.httpUrl, say);

  // What operators watch for: alerts as the hub opens them (drift, maintenance, rollback,
  // offline, ingest gaps) and deployments a device refused or rolled back.
  hub.ctx.bus.on('alert.changed', ({ change, alert }) => {
    if (change === 'opened') say(`ALERT ${String(alert['cause'])} on ${alert.deviceId}: ${String(alert['summary'])}`);
  });
  hub.ctx.bus.on('device.event', ({ deviceId, event }) => {
    if (event.type === 'deployment' && event.phase === 'failed') say(`${deviceId}: deployment ${event.deploymentId} failed (${event.reason}): ${event.message ?? ''}`);
  });

  // Devices enroll like real ones: a token for the simulated fleet (its devices are already
  // enrolled when the demo restarts on the same data directory).
  const enrollment = await api.request<{ token: string }>('POST', '/api/v1/enrollment-tokens', { labels: { fleet: 'demo' }, expiresInHours: 1 });
  say(`starting ${options.devices} simulated devices (they enroll with a one-hour token)…`);
  const fleet = await simulateFleet({
    enrollmentToken: enrollment.token,
    hubUrl: hub.httpUrl,
    devices: options.devices,
    stateRoot: join(config.dataDir, 'fleet'),
    seed: 1,
    // The demo prints alerts and work orders itself: the simulated agents log only errors unless asked for more.
    logger: pino({ level: options.logLevel === 'warn' ? 'error' : options.logLevel }),
    // Shorter trials than the 30 s default, so the demo is ready sooner.
    health: { trial: { durationMs: DEMO_TRIAL_MS, minInferences: 8 } },
    // Four vibration windows a second (instead of one): the 600-window drift baseline and the
    // 600-window drift window fill in 2.5 minutes, so the drifting machines (one in ten) start
    // drifting DEMO_DRIFT_ONSET_MS after their start and raise drift alerts minutes later.
    sourceIntervalMs: DEMO_SOURCE_INTERVAL_MS,
    drift: { windowMs: 600 * DEMO_SOURCE_INTERVAL_MS },
    driftOnsetMs: DEMO_DRIFT_ONSET_MS,
  });
  const deadline = Date.now() + 60_000;
  while (hub.ctx.devices.list().filter((d) => d.online).length < options.devices && Date.now() < deadline) await sleep(200);
  say(`${hub.ctx.devices.list().filter((d) => d.online).length} devices online`);

  const target = hub.ctx.registry.get(DEMO_MODEL, '1.0.0')!;
  const fleetIds = new Set(fleet.agents.map((a) => a.deviceId));
  const needing = [...fleetIds].filter((id) => hub.ctx.deployments.desiredHead(id) === null);
  if (needing.length > 0) {
    const d = await api.request<{ id: string }>('POST', '/api/v1/deployments', { model: `${DEMO_MODEL}@1.0.0`, deviceIds: needing });
    say(`deployed ${DEMO_MODEL}@1.0.0 to ${needing.length} devices (deployment ${d.id})`);
  }
  // Committed, not only serving: a device on trial has no committed model to roll back to yet.
  const committed = () => hub.ctx.devices.list().filter((d) => fleetIds.has(d.id) && d.reported?.active?.digest === target.digest && d.reported.deployment?.phase === 'committed').length;
  say(`waiting for golden probes and a ${DEMO_TRIAL_MS / 1000} s trial on every device…`);
  while (committed() < fleetIds.size && Date.now() < deadline + 60_000) await sleep(250);
  say(`${committed()}/${fleetIds.size} devices committed ${DEMO_MODEL}@1.0.0`);
  const machines = simMachines(options.devices, 1, DEMO_DRIFT_ONSET_MS);
  const faultyIndex = Math.max(0, machines.findIndex((m) => m.fault && m.fault !== 'healthy'));
  const faulty = simDeviceId(faultyIndex);
  const faultyMachine = `${machines[faultyIndex]?.machine ?? 'pump-1800'} with ${machines[faultyIndex]?.fault ?? 'no fault'}`;
  console.log(`
  Console:  ${hub.httpUrl}/   sign in as admin, password in ${hub.adminPasswordFile}${tls ? `
            (the demo CA ${tls.ca} is not one your browser trusts: import it, or accept the warning)` : ''}
  CLI:      export CAIRN_HUB_URL=${hub.httpUrl} CAIRN_TOKEN=$(cat ${hub.adminToken.tokenFile})${tls ? ` NODE_EXTRA_CA_CERTS=${tls.ca}` : ''}
            node hub/dist/cli/main.js device list
            node hub/dist/cli/main.js deploy --model ${DEMO_MODEL}@1.1.0 --selector site=plant-1
  Staged rollout (canary, 10 %, 50 %, 100 %), watched live:
            node hub/dist/cli/main.js rollout create --model ${DEMO_MODEL}@1.1.0 --selector fleet=demo --stages 1,10%,50%,100% --bake 20s --watch
  A faulty image stops itself at the canary:
            node hub/dist/cli/main.js rollout create --model ${DEMO_MODEL}@1.0.1-nan --selector fleet=demo --stages 1,100% --bake 20s --watch
  Alerts:   node hub/dist/cli/main.js alert list                 (drift alerts from minute ${DEMO_DRIFT_ONSET_MS / 60_000 + 1} or so)
            node hub/dist/cli/main.js workorder list             (e.g. ${faulty}, a ${faultyMachine})
            Work orders also reach the demo's maintenance system, a webhook receiver at ${receiver.url} (signed, HMAC-SHA256).
            Live events: curl -N -H "authorization: Bearer $CAIRN_TOKEN" ${hub.httpUrl}/api/v1/stream
  Rollback drill (a faulty image; the device rolls back on its own during its trial):
            node hub/dist/cli/main.js deploy --model ${DEMO_MODEL}@1.0.1-slow --device sim-0001
            node hub/dist/cli/main.js device events sim-0001
  Press Ctrl-C to stop.
`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    say('stopping…');
    await fleet.stop();
    await hub.close();
    await receiver.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

/**
 * The approval policy holds in the demo too: the admin pushed the reference images, so a second
 * operator, `reviewer`, approves the good versions through a console session of its own. Its
 * password is replaced on each run that needs it (nobody else uses that account).
 */
async function approveAsReviewer(admin: HubClient, hubUrl: string, say: (line: string) => void): Promise<void> {
  const missing: string[] = [];
  for (const version of DEMO_APPROVED) {
    const m = await admin.request<{ approvedBy: string[] }>('GET', `/api/v1/models/${DEMO_MODEL}/${version}`);
    if (m.approvedBy.length === 0) missing.push(version);
  }
  if (missing.length === 0) return;
  const { users } = await admin.request<{ users: { username: string }[] }>('GET', '/api/v1/users');
  const password = users.some((u) => u.username === DEMO_REVIEWER)
    ? (await admin.request<{ password: string }>('POST', `/api/v1/users/${DEMO_REVIEWER}/password`)).password
    : (await admin.request<{ password: string }>('POST', '/api/v1/users', { username: DEMO_REVIEWER, role: 'operator' })).password;
  const reviewer = await HubClient.login(hubUrl, DEMO_REVIEWER, password);
  for (const version of missing) await reviewer.request('POST', `/api/v1/models/${DEMO_MODEL}/${version}/approve`);
  await reviewer.request('DELETE', '/api/v1/session');
  say(`${DEMO_REVIEWER} (a second operator) approved ${missing.map((v) => `${DEMO_MODEL}@${v}`).join(', ')} for the whole fleet`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The demo's TLS material, made on first use and kept with its data: a demo CA and the hub's
 * certificate for localhost and 127.0.0.1, valid for a year.
 */
function demoCertificates(dir: string): { ca: string; cert: string; key: string } {
  const files = { ca: join(dir, 'demo-ca.pem'), cert: join(dir, 'hub.pem'), key: join(dir, 'hub.key') };
  if (existsSync(files.ca) && existsSync(files.cert) && existsSync(files.key)) return files;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  createCertificateAuthority(dir, 'demo-ca', 365);
  issueCertificate(dir, { ca: 'demo-ca', name: 'hub', commonName: 'localhost', days: 365, usage: 'server' });
  return files;
}

/**
 * Every client inside the demo — the CLI's HTTP client pushing images, the simulated agents'
 * enrollment and MQTT — must trust the demo CA, as an operator's shell would: through Node's
 * NODE_EXTRA_CA_CERTS, which Node reads only at start, hence this one re-run of the same
 * command with it set. Nothing turns verification off.
 */
async function rerunTrusting(ca: string): Promise<void> {
  const child = spawn(process.execPath, process.argv.slice(1), { stdio: 'inherit', env: { ...process.env, NODE_EXTRA_CA_CERTS: ca } });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => child.kill(signal));
  const code = await new Promise<number>((resolve) => child.once('exit', (c) => resolve(c ?? 1)));
  process.exit(code);
}
