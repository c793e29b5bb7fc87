import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig, parseConfig, envName, type AgentConfig } from '@cairn/agent/config.js';
import { ConfigError } from '@cairn/agent/errors.js';

const KEY = Buffer.alloc(32, 7).toString('base64');
const EXAMPLE = resolve(fileURLToPath(new URL('.', import.meta.url)), '../../../agent/deploy/agent.example.yaml');

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-agent-config-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err.problems;
  }
  assert.fail('expected a ConfigError');
}

test('a minimal YAML file gets every default', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'agent.yaml');
  await writeFile(path, `deviceId: press-07\nstateDir: state\nmqttUrl: mqtt://127.0.0.1:1883\nrootPublicKey: "${KEY}"\n`);
  const config = loadConfig({ path, env: {} });
  assert.deepEqual(config, {
    deviceId: 'press-07',
    stateDir: join(dir, 'state'),
    mqttUrl: 'mqtt://127.0.0.1:1883',
    rootPublicKey: KEY,
    labels: {},
    api: { host: '127.0.0.1', port: 7070 },
    telemetryIntervalMs: 10_000,
    source: { kind: 'none' },
    logLevel: 'info',
    health: {},
    rules: {},
    drift: {},
  } satisfies AgentConfig);
});

test('environment variables derived from the schema path override the file', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'agent.yaml');
  await writeFile(
    path,
    [`deviceId: press-07`, `stateDir: /var/lib/cairn`, `mqttUrl: mqtt://10.0.0.1:1883`, `rootPublicKey: "${KEY}"`, `api: {port: 8000}`, `source: {kind: simulated}`, `labels: {site: plant-1}`].join('\n'),
  );
  const config = loadConfig({
    path,
    env: {
      CAIRN_AGENT_MQTT_URL: 'mqtt://hub.local:1884',
      CAIRN_AGENT_DEVICE_ID: '0042',
      CAIRN_AGENT_API_PORT: '7171',
      CAIRN_AGENT_TELEMETRY_INTERVAL_MS: '2500',
      CAIRN_AGENT_SOURCE_INTERVAL_MS: '250',
      CAIRN_AGENT_LABELS: '{"site":"plant-2","line":"b"}',
      CAIRN_AGENT_LOG_LEVEL: 'debug',
      UNRELATED: 'x',
    },
  });
  assert.equal(config.mqttUrl, 'mqtt://hub.local:1884');
  assert.equal(config.deviceId, '0042', 'a string setting stays a string even when it looks numeric');
  assert.deepEqual(config.api, { host: '127.0.0.1', port: 7171 });
  assert.equal(config.telemetryIntervalMs, 2500);
  assert.deepEqual(config.source, { kind: 'simulated', intervalMs: 250 });
  assert.deepEqual(config.labels, { site: 'plant-2', line: 'b' });
  assert.equal(config.logLevel, 'debug');
  assert.equal(config.stateDir, '/var/lib/cairn');
});

test('CAIRN_AGENT_API=false disables the local API; env alone is a complete config', () => {
  const config = loadConfig({
    env: { CAIRN_AGENT_DEVICE_ID: 'd1', CAIRN_AGENT_STATE_DIR: 'st', CAIRN_AGENT_MQTT_URL: 'mqtt://[::1]:1883', CAIRN_AGENT_ROOT_PUBLIC_KEY: KEY, CAIRN_AGENT_API: 'false' },
    cwd: '/srv/agent',
  });
  assert.equal(config.api, false);
  assert.equal(config.stateDir, '/srv/agent/st');
});

test('env names follow the schema path', () => {
  assert.equal(envName(['mqttUrl']), 'CAIRN_AGENT_MQTT_URL');
  assert.equal(envName(['api', 'port']), 'CAIRN_AGENT_API_PORT');
  assert.equal(envName(['source', 'intervalMs']), 'CAIRN_AGENT_SOURCE_INTERVAL_MS');
  assert.equal(envName(['rootPublicKey']), 'CAIRN_AGENT_ROOT_PUBLIC_KEY');
});

test('every error is listed at once, each named by its path', () => {
  const problems = problemsOf(() =>
    parseConfig({
      deviceId: 'bad/id',
      mqttUrl: 'http://broker',
      rootPublicKey: 'not-a-key',
      labels: { 'bad key!': 'x' },
      api: { port: 70000, extra: 1 },
      telemetryIntervalMs: 5,
      source: { kind: 'simulated', intervalMs: 'fast' },
      logLevel: 'loud',
      colour: 'blue',
    }),
  );
  const text = problems.join('\n');
  for (const path of ['deviceId', 'stateDir', 'mqttUrl', 'rootPublicKey', 'labels', 'api.port', 'api.extra', 'telemetryIntervalMs', 'source.intervalMs', 'logLevel', 'colour']) {
    assert.ok(problems.some((p) => p.startsWith(`${path}:`) || p.startsWith(`${path}.`)), `no problem reported for ${path} in:\n${text}`);
  }
  assert.match(text, /stateDir: required \(or set CAIRN_AGENT_STATE_DIR\)/);
  assert.ok(problems.length >= 11);
});

test('a bad source kind and an unparsable env number are explained', () => {
  const problems = problemsOf(() =>
    loadConfig({ env: { CAIRN_AGENT_DEVICE_ID: 'd1', CAIRN_AGENT_STATE_DIR: '/s', CAIRN_AGENT_MQTT_URL: 'mqtt://h:1', CAIRN_AGENT_ROOT_PUBLIC_KEY: KEY, CAIRN_AGENT_API_PORT: 'seventy', CAIRN_AGENT_SOURCE: '{"kind":"camera"}' } }),
  );
  assert.ok(problems.some((p) => p.startsWith('CAIRN_AGENT_API_PORT:')), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('source.kind:')), problems.join('\n'));
});

test('an unreadable or non-YAML file is one clear error', async (t) => {
  const dir = await tempDir(t);
  assert.match(problemsOf(() => loadConfig({ path: join(dir, 'missing.yaml'), env: {} }))[0]!, /cannot read .*ENOENT/);
  const bad = join(dir, 'bad.yaml');
  await writeFile(bad, 'deviceId: [unclosed\n');
  assert.match(problemsOf(() => loadConfig({ path: bad, env: {} }))[0]!, /not valid YAML/);
  const list = join(dir, 'list.yaml');
  await writeFile(list, '- a\n- b\n');
  assert.match(problemsOf(() => loadConfig({ path: list, env: {} }))[0]!, /mapping/);
});

test('the example config documents every field and is valid as shipped', () => {
  const config = loadConfig({ path: EXAMPLE, env: {} });
  assert.equal(config.deviceId, 'press-07');
  assert.deepEqual(config.drift, { windowMs: 600_000, minSamples: 30, baselineSamples: 600 });
  assert.deepEqual(Object.keys(config).sort(), ['api', 'deviceId', 'drift', 'health', 'labels', 'logLevel', 'mqttUrl', 'rootPublicKey', 'rules', 'source', 'stateDir', 'telemetryIntervalMs']);
});

test('stdin and mqtt sources get their defaults; a bad topic filter, qos or unknown key is named', () => {
  const base = { deviceId: 'd1', stateDir: '/s', mqttUrl: 'mqtt://h:1', rootPublicKey: KEY };
  assert.deepEqual(parseConfig({ ...base, source: { kind: 'stdin' } }).source, { kind: 'stdin', maxRecordBytes: 1024 * 1024 });
  assert.deepEqual(parseConfig({ ...base, source: { kind: 'mqtt', url: 'mqtt://127.0.0.1:1884', topic: 'plant/+/vibration/#' } }).source, {
    kind: 'mqtt',
    url: 'mqtt://127.0.0.1:1884',
    topic: 'plant/+/vibration/#',
    qos: 0,
    maxQueue: 1024,
    maxRecordBytes: 1024 * 1024,
  });
  for (const topic of ['plant/#/x', 'plant/a#', 'plant/a+/b', '$SYS/#', '']) {
    const problems = problemsOf(() => parseConfig({ ...base, source: { kind: 'mqtt', url: 'mqtt://127.0.0.1:1884', topic } }));
    assert.ok(problems.some((p) => p.startsWith('source.topic:')), `${topic}: ${problems.join('\n')}`);
  }
  const problems = problemsOf(() => parseConfig({ ...base, source: { kind: 'mqtt', url: 'http://x', topic: 't', qos: 2, colour: 'red' } }));
  for (const path of ['source.url:', 'source.qos:', 'source.colour: unknown setting']) assert.ok(problems.some((p) => p.startsWith(path)), `${path} in ${problems.join('\n')}`);
  assert.match(problemsOf(() => parseConfig({ ...base, source: { kind: 'camera' } })).join('\n'), /source\.kind: must be one of simulated, stdin, mqtt, none/);
});
