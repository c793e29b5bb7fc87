/**
 * A field device installs only the agent: pack @cairn/shared and @cairn/agent as npm would
 * publish them, install the tarballs into an empty project, and check that the agent runs and
 * that nothing of the hub or the console came along.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../../..');

test('the packed agent installs and runs without fastify, aedes, svelte or the console', { timeout: 600_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-device-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  await run('npm', ['pack', '--silent', '-w', '@cairn/shared', '-w', '@cairn/agent', '--pack-destination', dir], { cwd: ROOT });
  const tarballs = readdirSync(dir).filter((f) => f.endsWith('.tgz')).sort();
  assert.deepEqual(tarballs, ['cairn-agent-0.1.0.tgz', 'cairn-shared-0.1.0.tgz']);

  const device = join(dir, 'device');
  await run('mkdir', ['-p', device]);
  // The same install-script policy as the repository: onnxruntime's CUDA download stays off.
  writeFileSync(join(device, 'package.json'), JSON.stringify({ name: 'device', private: true, allowScripts: { 'onnxruntime-node': false, 'better-sqlite3': true } }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs.map((f) => join(dir, f))], { cwd: device });

  const installed = readdirSync(join(device, 'node_modules'));
  for (const unwanted of ['fastify', 'aedes', 'svelte', 'vite', '@fastify', '@sveltejs']) {
    assert.ok(!installed.includes(unwanted), `${unwanted} must not be installed on a device`);
  }
  assert.ok(!existsSync(join(device, 'node_modules', '@cairn', 'hub')));
  assert.ok(!existsSync(join(device, 'node_modules', '@cairn', 'console')));

  const { stdout } = await run(process.execPath, [join(device, 'node_modules/@cairn/agent/dist/cli/main.js'), '--version']);
  assert.equal(stdout.trim(), '0.1.0');
  const failing = await run(process.execPath, [join(device, 'node_modules/@cairn/agent/dist/cli/main.js'), 'run', '--config', join(dir, 'missing.yaml')]).catch((e: { code: number; stderr: string }) => e);
  assert.equal((failing as { code: number }).code, 1);
  assert.match((failing as { stderr: string }).stderr, /^cairn-agent: .*missing\.yaml/);
});
