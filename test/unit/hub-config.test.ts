import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadHubConfig, ConfigError } from '@cairn/hub';

test('defaults, then YAML, then environment, then explicit overrides', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'hub.yaml');
  writeFileSync(file, 'http:\n  port: 9000\nmqtt:\n  port: 2883\nlogLevel: debug\n');
  assert.equal(loadHubConfig({ env: {} }).http.port, 8080);
  const fromFile = loadHubConfig({ file, env: {} });
  assert.deepEqual([fromFile.http.port, fromFile.mqtt.port, fromFile.logLevel, fromFile.http.host], [9000, 2883, 'debug', '127.0.0.1']);
  const fromEnv = loadHubConfig({ file, env: { CAIRN_HTTP_PORT: '9100', CAIRN_DESIRED_TTL_HOURS: '12' } });
  assert.deepEqual([fromEnv.http.port, fromEnv.mqtt.port, fromEnv.desired.ttlHours], [9100, 2883, 12]);
  assert.equal(loadHubConfig({ file, env: { CAIRN_HTTP_PORT: '9100' }, overrides: { http: { port: 9200 } } }).http.port, 9200);
});

test('every problem is listed at once, from the file and the environment', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'hub.yaml');
  writeFileSync(file, 'http:\n  port: 70000\n  colour: blue\nlogLevel: loud\nmqtt:\n  publicUrl: http://wrong\n');
  try {
    loadHubConfig({ file, env: { CAIRN_MQTT_PORT: 'many' } });
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join('\n');
    for (const expected of [/CAIRN_MQTT_PORT/, /\/http\/port/, /colour/, /\/logLevel/, /\/mqtt\/publicUrl/]) assert.match(text, expected);
    assert.ok(err.problems.length >= 5, text);
  }
});

test('an unreadable or malformed YAML file is a config error, not a crash', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'hub.yaml');
  writeFileSync(file, 'http: [unclosed\n');
  assert.throws(() => loadHubConfig({ file, env: {} }), ConfigError);
  assert.throws(() => loadHubConfig({ file: join(dir, 'missing.yaml'), env: {} }), ConfigError);
});
