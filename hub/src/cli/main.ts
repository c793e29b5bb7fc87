#!/usr/bin/env node
/**
 * `cairn` — the operator's command line (DESIGN §8). Every command talks to the hub's HTTP API
 * except `hub` and `demo`, which run one. Failures print one line and exit non-zero; `--json`
 * prints machine-readable output.
 */
import { Command, InvalidArgumentError, Option } from 'commander';
import type { DeviceEventT } from '@cairn/shared';
import cliProgress from 'cli-progress';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { loadHubConfig, ConfigError, type HubConfigInput } from '../infra/config.js';
import { startHub } from '../server.js';
import { HubClient, ApiError, type ClientOptions } from './hub-client.js';
import { table, formatBytes } from './output.js';
import { runDemo } from './demo.js';
import { readImage, ImageError } from './image-dir.js';
import { registerOperatorCommands } from './operator-commands.js';
import { registerBrokerCommands } from './broker-config.js';
import { registerRolloutCommands } from './rollout-commands.js';
import { registerKeyCommands } from './key-commands.js';
import { registerAlertCommands } from './alert-commands.js';

const program = new Command();
program.name('cairn').description('Cairn edge MLOps fleet manager — operator CLI').showHelpAfterError();

const clientOptions = (cmd: Command) =>
  cmd
    .option('--hub <url>', 'hub URL (default $CAIRN_HUB_URL or http://127.0.0.1:8080)')
    .option('--token <token>', 'API token (default $CAIRN_TOKEN or <data>/admin-token)')
    .option('--data <dir>', "the hub's data directory, to read its admin token on the hub's machine")
    .option('--json', 'machine-readable output');

type Common = ClientOptions & { json?: boolean };
const client = (o: Common) => HubClient.from(o);
const print = (o: Common, json: unknown, text: () => string) => console.log(o.json ? JSON.stringify(json, null, 2) : text());

function hubOverrides(o: { data?: string; http?: string; mqtt?: string; host?: string; broker?: string; logLevel?: string }): HubConfigInput {
  const overrides: HubConfigInput = {};
  if (o.data) overrides.dataDir = o.data;
  if (o.logLevel) overrides.logLevel = o.logLevel as HubConfigInput['logLevel'];
  if (o.http || o.host) overrides.http = { ...(o.http ? { port: Number(o.http) } : {}), ...(o.host ? { host: o.host } : {}) };
  if (o.mqtt || o.host || o.broker) overrides.mqtt = { ...(o.mqtt ? { port: Number(o.mqtt) } : {}), ...(o.host ? { host: o.host } : {}), ...(o.broker ? { broker: o.broker } : {}) };
  return overrides;
}

program
  .command('hub')
  .description('run the hub: HTTP API, embedded MQTT broker (or a client of --broker), console')
  .option('--config <file>', 'YAML config file')
  .option('--data <dir>', 'data directory (default ./data)')
  .option('--http <port>', 'HTTP port (default 8080)')
  .option('--mqtt <port>', 'MQTT port (default 1883)')
  .option('--host <host>', 'address to bind HTTP and MQTT to (default 127.0.0.1)')
  .option('--broker <url>', 'join an external MQTT broker (mqtt://host:port) instead of embedding one; its files: cairn broker config')
  .option('--log-level <level>', 'fatal|error|warn|info|debug|trace')
  .action(async (o) => {
    const config = loadHubConfig({ file: o.config, overrides: hubOverrides(o) });
    const hub = await startHub(config);
    console.error(`cairn hub: API ${hub.httpUrl}  MQTT ${hub.mqttUrl}  admin token in ${hub.adminToken.tokenFile}, admin password in ${hub.adminPasswordFile}`);
    const stop = async () => {
      await hub.close();
      process.exit(0);
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });

program
  .command('demo')
  .description('hub + embedded broker + simulated fleet + console, with a model deployed')
  .option('--devices <n>', 'simulated devices', '25')
  .option('--data <dir>', 'data directory for the demo hub', '.cairn/demo')
  .option('--http <port>', 'HTTP port', '8080')
  .option('--mqtt <port>', 'MQTT port', '1883')
  .option('--log-level <level>', 'hub log level', 'warn')
  .option('--tls', 'HTTPS and MQTT over TLS, with a demo CA made by openssl in <data>/tls')
  .action(async (o) => {
    await runDemo({ devices: Number(o.devices), dataDir: o.data, httpPort: Number(o.http), mqttPort: Number(o.mqtt), logLevel: o.logLevel, tls: o.tls === true });
  });

const model = program.command('model').description('model versions in the registry');
clientOptions(
  model
    .command('push <path>')
    .description('publish an ONNX file (validated with onnxruntime, signed by the hub), or a reference image directory (model.onnx + manifest.json)')
    .option('--name <name>', 'model name (default: the image manifest\'s)')
    .option('--version <version>', 'semantic version (default: the image manifest\'s)')
    .option('--description <text>')
    .addOption(new Option('--quantize <scheme>', 'quantize before publishing, behind an accuracy gate').choices(['int8']))
    .option('--calibration <file>', 'JSON {"inputs": [[...]], "labels"?: [...]} the gate evaluates fp32 and int8 on')
    .option('--reference <file>', 'JSON {"inputs": [[...]]} of training-like data for the drift reference')
    .option('--tolerance <points>', 'largest accepted accuracy drop, in points', '0.5')
    .option('--max-abs-error <value>', 'largest accepted absolute output difference (needed without labels for single-output models)')
    .option('--min-agreement <share>', 'smallest accepted argmax agreement without labels (0-1)')
    .option('--max-latency-ratio <ratio>', 'refuse an int8 model slower than this multiple of the fp32 parent')
    .option('--classes <names>', 'comma-separated class names of the outputs (drift reference)'),
).action(async (path: string, o: Common & PushOptions) => {
  const api = client(o);
  const progress = (line: string) => {
    if (!o.json) process.stderr.write(`${line}\n`);
  };
  const image = statSync(path).isDirectory() ? readImage(path) : null;
  const bytes = image ? image.model : readFileSync(path);
  const name = o.name ?? image?.manifest.name;
  const version = o.version ?? image?.manifest.version;
  if (!name || !version) throw new UsageError('give --name and --version (or push an image directory with a manifest.json)');
  const pipeline = image !== null || o.quantize !== undefined || o.reference !== undefined;
  let m: ModelInfo & { gate?: GateInfo };
  if (!pipeline) {
    const query = new URLSearchParams({ name, version, ...(o.description ? { description: o.description } : {}) });
    progress(`pushing ${basename(path)} (${formatBytes(bytes.length)})…`);
    m = await api.request<ModelInfo>('POST', `/api/v1/models?${query}`, undefined, { raw: bytes });
  } else {
    if (o.quantize && !o.calibration) throw new UsageError('--quantize needs --calibration FILE');
    const upload = async (what: string, data: Buffer) => {
      progress(`uploading ${what} (${formatBytes(data.length)})…`);
      const bar = uploadBar(o.json === true);
      try {
        return (await api.request<{ digest: string }>('POST', '/api/v1/uploads', undefined, { raw: data, ...(bar ? { onProgress: bar.update } : {}) })).digest;
      } finally {
        bar?.stop();
      }
    };
    const body: Record<string, unknown> = { name, version, model: await upload('model', bytes) };
    if (o.description ?? image?.manifest.description) body.description = o.description ?? image?.manifest.description;
    if (o.quantize) body.quantize = o.quantize;
    if (o.calibration) body.calibration = await upload('calibration data', readFileSync(o.calibration));
    if (o.reference) body.reference = await upload('reference data', readFileSync(o.reference));
    if (o.quantize) {
      body.tolerance = Number(o.tolerance);
      if (o.maxAbsError !== undefined) body.maxAbsError = Number(o.maxAbsError);
      if (o.minAgreement !== undefined) body.minAgreement = Number(o.minAgreement);
      if (o.maxLatencyRatio !== undefined) body.maxLatencyRatio = Number(o.maxLatencyRatio);
    }
    if (o.classes) body.classes = o.classes.split(',');
    if (image) body.sections = image.sections;
    progress(o.quantize ? 'validating, quantizing to int8 and gating against the fp32 parent…' : 'validating and signing…');
    m = await api.request<ModelInfo & { gate?: GateInfo }>('POST', '/api/v1/models/publish', body);
  }
  print(o, m, () => {
    const lines = [`published ${m.name}@${m.version}  release ${m.releaseCounter}  sha256:${m.digest}  ${formatBytes(m.size)}  signed by ${m.signedBy.join(',')}`];
    if (m.gate) {
      const g = m.gate;
      lines.push(
        table(
          [
            { '': 'size', fp32: formatBytes(g.size.parent), int8: formatBytes(g.size.child), change: `×${g.size.ratio.toFixed(3)}` },
            { '': 'latency (median)', fp32: `${g.latency.parentMs.toFixed(3)} ms`, int8: `${g.latency.childMs.toFixed(3)} ms`, change: `×${g.latency.ratio.toFixed(2)}` },
            ...(g.accuracy ? [{ '': 'accuracy', fp32: `${g.accuracy.parent.toFixed(2)} %`, int8: `${g.accuracy.child.toFixed(2)} %`, change: `${(-g.accuracy.dropPoints).toFixed(2)} pts` }] : []),
            { '': 'agreement', fp32: '', int8: `${(g.agreement * 100).toFixed(2)} %`, change: '' },
          ],
          ['', 'fp32', 'int8', 'change'],
        ),
      );
    }
    return lines.join('\n');
  });
});
clientOptions(model.command('list').description('list model versions')).action(async (o: Common) => {
  const { models } = await client(o).request<{ models: ModelInfo[] }>('GET', '/api/v1/models');
  print(o, models, () =>
    table(
      models.map((m) => ({ ...m, model: `${m.name}@${m.version}`, digest: m.digest.slice(0, 12), size: formatBytes(m.size), approvedBy: m.approvedBy.length > 0 ? m.approvedBy.join(',') : 'no (canary only)' })),
      ['model', 'releaseCounter', 'digest', 'size', 'pushedBy', 'approvedBy', 'createdAt'],
    ),
  );
});
clientOptions(model.command('show <ref>').description('show one version (name@version) with its signed manifest')).action(async (ref: string, o: Common) => {
  const m = await client(o).request<ModelInfo>('GET', `/api/v1/models/${modelPath(ref)}`);
  print(o, m, () =>
    [
      `${m.name}@${m.version}  release ${m.releaseCounter}`,
      `digest    sha256:${m.digest}`,
      `size      ${formatBytes(m.size)}`,
      `created   ${m.createdAt}`,
      `signed by ${m.signedBy.join(', ')}`,
      `pushed by ${m.pushedBy ?? 'unknown'}, approved by ${m.approvedBy.length > 0 ? m.approvedBy.join(', ') : 'nobody yet (canary only)'}`,
      `inputs    ${m.inputs.map((t) => `${t.name} ${t.type}[${t.dims.join(',')}]`).join('; ')}`,
      `outputs   ${m.outputs.map((t) => `${t.name} ${t.type}[${t.dims.join(',')}]`).join('; ')}`,
    ].join('\n'),
  );
});
clientOptions(model.command('pull <ref>').description('download the ONNX file of a version').requiredOption('-o, --output <file>')).action(
  async (ref: string, o: Common & { output: string }) => {
    const bytes = await client(o).download(`/api/v1/models/${modelPath(ref)}/blob`);
    writeFileSync(o.output, bytes);
    print(o, { file: o.output, size: bytes.length }, () => `wrote ${o.output} (${formatBytes(bytes.length)})`);
  },
);

clientOptions(model.command('approve <ref>').description('approve a version for more than a canary (you must not be the one who pushed it)')).action(async (ref: string, o: Common) => {
  const m = await client(o).request<ModelInfo>('POST', `/api/v1/models/${modelPath(ref)}/approve`);
  print(o, m, () => `${m.name}@${m.version} approved by ${m.approvedBy.join(', ')} (pushed by ${m.pushedBy ?? 'unknown'})`);
});

clientOptions(
  program
    .command('deploy')
    .description('assign a model version to devices at once (a one-stage rollout; use `cairn rollout create` to stage it)')
    .requiredOption('--model <ref>', 'name@version')
    .addOption(new Option('--device <id...>', 'device ids').conflicts('selector'))
    .addOption(new Option('--selector <selector>', 'label selector, e.g. "site=plant-1,line in (a,b)"')),
).action(async (o: Common & { model: string; device?: string[]; selector?: string }) => {
  if (!o.device && o.selector === undefined) throw new UsageError('give --device ID… or --selector S');
  const d = await client(o).request<DeploymentInfo>('POST', '/api/v1/deployments', { model: o.model, ...(o.device ? { deviceIds: o.device } : { selector: o.selector }) });
  print(o, d, () => `deployment ${d.id}: ${d.model} → ${d.devices.length} device(s)`);
});

const deployment = program.command('deployment').description('deployments made with `cairn deploy`');
clientOptions(deployment.command('list')).action(async (o: Common) => {
  const { deployments } = await client(o).request<{ deployments: DeploymentInfo[] }>('GET', '/api/v1/deployments');
  print(o, deployments, () => table(deployments.map((d) => ({ ...d, devices: d.devices.length, states: d.summary })), ['id', 'model', 'devices', 'states', 'createdAt']));
});
clientOptions(deployment.command('show <id>')).action(async (id: string, o: Common) => {
  const d = await client(o).request<DeploymentInfo>('GET', `/api/v1/deployments/${encodeURIComponent(id)}`);
  print(o, d, () => `${d.id}  ${d.model}  ${d.createdAt}\n${table(d.devices, ['id', 'seq', 'state', 'reason'])}`);
});

const images = program.command('images').description('the reference model images in firmware-images/');
images
  .command('build')
  .description('train, quantize, gate, sign and write every reference image (deterministic)')
  .option('--out <dir>', 'output directory', 'firmware-images')
  .option('--key <file>', 'release key (base64 seed) that signs the images', 'firmware-images/keys/demo-release.key')
  .action(async (o: { out: string; key: string }) => {
    const { buildReferenceImages, readReleaseSeed } = await import('../training/images.js');
    const entries = await buildReferenceImages({ outDir: o.out, releaseKeySeed: readReleaseSeed(o.key), log: (line) => console.error(line) });
    console.log(`wrote ${entries.length} images to ${o.out} (index.json, INDEX.md)`);
  });

const device = program.command('device').description('devices of the fleet');
clientOptions(device.command('list').option('--selector <selector>', 'label selector')).action(async (o: Common & { selector?: string }) => {
  const query = o.selector ? `?${new URLSearchParams({ selector: o.selector })}` : '';
  const { devices, total } = await client(o).request<{ devices: DeviceInfo[]; total: number }>('GET', `/api/v1/devices${query}`);
  print(o, { devices, total }, () =>
    `${table(
      devices.map((d) => ({
        id: d.id,
        status: d.online ? 'online' : 'offline',
        model: d.active ? `${d.active.name}@${d.active.version}` : null,
        phase: d.deployment?.phase,
        labels: d.labels,
        lastSeen: d.lastSeenAt,
      })),
      ['id', 'status', 'model', 'phase', 'labels', 'lastSeen'],
    )}\n${total} device(s)`,
  );
});
clientOptions(device.command('show <id>')).action(async (id: string, o: Common) => {
  const d = await client(o).request<DeviceInfo>('GET', `/api/v1/devices/${encodeURIComponent(id)}`);
  print(o, d, () => JSON.stringify(d, null, 2));
});
clientOptions(
  device
    .command('events <id>')
    .description('the newest events of a device: deployment phases (probing, trial, rolled_back …), rejections, maintenance alerts')
    .option('--type <type>', 'only this type (deployment, desired_rejected, maintenance_alert, …)')
    .option('--limit <n>', 'how many of the newest', positiveInt, 50),
).action(async (id: string, o: Common & { type?: string; limit: number }) => {
  const { events } = await client(o).request<{ events: DeviceEventT[] }>('GET', `/api/v1/devices/${encodeURIComponent(id)}/events?limit=1000`);
  const shown = events.filter((e) => !o.type || e.type === o.type).slice(0, o.limit);
  print(o, { events: shown }, () =>
    table(
      shown.map((e) => ({
        time: new Date(e.ts).toISOString(),
        type: e.type,
        deployment: e.deploymentId,
        phase: e.phase,
        reason: e.reason,
        detail: e.alert ? `${e.alert.machine}: ${e.alert.faultClass} (${e.alert.confidence})` : e.message,
      })),
      ['time', 'type', 'deployment', 'phase', 'reason', 'detail'],
    ),
  );
});
clientOptions(device.command('label <id> <changes...>').description('set labels (k=v) or remove them (k-)')).action(async (id: string, changes: string[], o: Common) => {
  const labels: Record<string, string | null> = {};
  for (const c of changes) {
    if (c.endsWith('-') && !c.includes('=')) labels[c.slice(0, -1)] = null;
    else if (c.includes('=')) labels[c.slice(0, c.indexOf('='))] = c.slice(c.indexOf('=') + 1);
    else throw new UsageError(`label change ${JSON.stringify(c)} is neither k=v nor k-`);
  }
  const d = await client(o).request<DeviceInfo>('PUT', `/api/v1/devices/${encodeURIComponent(id)}/labels`, { labels });
  print(o, d, () => `${d.id}: ${Object.entries(d.labels).map(([k, v]) => `${k}=${v}`).join(',')}`);
});

interface EnrollmentInfo {
  deviceId: string;
  status: string;
  method: string | null;
  requestedAt: string | null;
  requestedFrom: string | null;
  enrolledAt: string | null;
}
clientOptions(
  device
    .command('enroll-token')
    .description('create an enrollment token (printed once): devices enroll with it at once (cairn-agent enroll --token)')
    .option('--label <k=v...>', 'labels given to the devices it enrolls', collectLabels, {})
    .option('--uses <n>', 'how many devices may use it (default: unlimited until it expires)', positiveInt)
    .option('--expires-in <hours>', 'lifetime in hours', positiveInt, 24),
).action(async (o: Common & { label: Record<string, string>; uses?: number; expiresIn: number }) => {
  const created = await client(o).request<{ id: string; token: string; expiresAt: string; maxUses: number | null }>('POST', '/api/v1/enrollment-tokens', {
    labels: o.label,
    expiresInHours: o.expiresIn,
    ...(o.uses ? { maxUses: o.uses } : {}),
  });
  print(o, created, () => `${created.token}\n(token ${created.id}; ${created.maxUses ?? 'unlimited'} use(s); expires ${created.expiresAt}; shown only now)`);
});
clientOptions(device.command('enroll-tokens').description('enrollment tokens (never their secrets)')).action(async (o: Common) => {
  const { tokens } = await client(o).request<{ tokens: Array<Record<string, unknown>> }>('GET', '/api/v1/enrollment-tokens');
  print(o, { tokens }, () => table(tokens, ['id', 'labels', 'uses', 'maxUses', 'expiresAt', 'revokedAt']));
});
clientOptions(device.command('revoke-token <id>').description('revoke an enrollment token')).action(async (id: string, o: Common) => {
  await client(o).request('DELETE', `/api/v1/enrollment-tokens/${encodeURIComponent(id)}`);
  print(o, { revoked: id }, () => `token ${id} revoked`);
});
clientOptions(device.command('enrollments').description('device identities: pending, accepted, active, revoked').option('--status <status>', 'only this status')).action(
  async (o: Common & { status?: string }) => {
    const query = o.status ? `?${new URLSearchParams({ status: o.status })}` : '';
    const { enrollments } = await client(o).request<{ enrollments: EnrollmentInfo[] }>('GET', `/api/v1/enrollments${query}`);
    print(o, { enrollments }, () => table(enrollments.map((e) => ({ ...e })), ['deviceId', 'status', 'method', 'requestedAt', 'requestedFrom', 'enrolledAt']));
  },
);
for (const [verb, description] of [
  ['accept', 'accept a pending device: it collects its credentials with its next request'],
  ['revoke', 'revoke a device: its session is closed and it can never connect again'],
] as const) {
  clientOptions(device.command(`${verb} <id>`).description(description)).action(async (id: string, o: Common) => {
    const e = await client(o).request<EnrollmentInfo>('POST', `/api/v1/devices/${encodeURIComponent(id)}/${verb}`);
    print(o, e, () => `${e.deviceId}: ${e.status}`);
  });
}
clientOptions(device.command('forget <id>').description('forget a pending or revoked device id so that it can enroll again')).action(async (id: string, o: Common) => {
  await client(o).request('DELETE', `/api/v1/enrollments/${encodeURIComponent(id)}`);
  print(o, { forgotten: id }, () => `${id} forgotten`);
});

function collectLabels(value: string, previous: Record<string, string>): Record<string, string> {
  const at = value.indexOf('=');
  if (at < 1) throw new InvalidArgumentError(`label ${JSON.stringify(value)} is not k=v`);
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}

registerOperatorCommands(program, { clientOptions, client, print });
registerBrokerCommands(program);
registerRolloutCommands(program, { clientOptions, client, print });
registerKeyCommands(program, { clientOptions, client, print });
registerAlertCommands(program, { clientOptions, client, print });

class UsageError extends Error {}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

/** An upload progress bar on an interactive terminal (none with --json or when piped). */
function uploadBar(json: boolean): { update(sent: number, total: number): void; stop(): void } | null {
  if (json || !process.stderr.isTTY) return null;
  const bar = new cliProgress.SingleBar({ stream: process.stderr, format: '  [{bar}] {percentage}% {sentText}/{totalText}', hideCursor: true }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update(sent, total) {
      if (!started) {
        bar.start(total, 0, { sentText: formatBytes(0), totalText: formatBytes(total) });
        started = true;
      }
      bar.update(sent, { sentText: formatBytes(sent) });
    },
    stop: () => started && bar.stop(),
  };
}

function modelPath(ref: string): string {
  const at = ref.lastIndexOf('@');
  if (at <= 0 || at === ref.length - 1) throw new UsageError(`model reference ${JSON.stringify(ref)} is not of the form name@version`);
  return `${encodeURIComponent(ref.slice(0, at))}/${encodeURIComponent(ref.slice(at + 1))}`;
}

interface ModelInfo {
  name: string;
  version: string;
  releaseCounter: number;
  digest: string;
  size: number;
  createdAt: string;
  signedBy: string[];
  pushedBy: string | null;
  approvedBy: string[];
  inputs: { name: string; type: string; dims: (number | string)[] }[];
  outputs: { name: string; type: string; dims: (number | string)[] }[];
}
interface PushOptions {
  name?: string;
  version?: string;
  description?: string;
  quantize?: 'int8';
  calibration?: string;
  reference?: string;
  tolerance: string;
  maxAbsError?: string;
  minAgreement?: string;
  maxLatencyRatio?: string;
  classes?: string;
}
interface GateInfo {
  size: { parent: number; child: number; ratio: number };
  latency: { parentMs: number; childMs: number; ratio: number };
  accuracy?: { parent: number; child: number; dropPoints: number };
  agreement: number;
}

interface DeploymentInfo {
  id: string;
  model: string;
  createdAt: string;
  devices: { id: string; seq: number; state: string; reason?: string }[];
  summary: Record<string, number>;
}
interface DeviceInfo {
  id: string;
  online: boolean;
  lastSeenAt: string | null;
  labels: Record<string, string>;
  active: { name: string; version: string } | null;
  deployment: { phase: string } | null;
}

program.parseAsync().catch((err: unknown) => {
  if (err instanceof ApiError) console.error(`cairn: ${err.message} (${err.code})`);
  else if (err instanceof ConfigError) console.error(`cairn: ${err.message}`);
  else if (err instanceof UsageError || err instanceof ImageError) console.error(`cairn: ${err.message}`);
  else console.error(`cairn: ${(err as Error).message ?? String(err)}`);
  process.exit(1);
});
