/**
 * The agent's deployment files in agent/deploy/: the systemd unit passes `systemd-analyze
 * verify` (Debian's systemd) without a warning and runs the agent's real entry point with its
 * state in a systemd StateDirectory and a restart policy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const AGENT = resolve(import.meta.dirname, '../../../agent');
const UNIT = join(AGENT, 'deploy/cairn-agent.service');

function directive(unit: string, key: string): string[] {
  return unit
    .split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

test('the systemd unit runs the agent binary with a state directory and restarts it on failure', async () => {
  const unit = await readFile(UNIT, 'utf8');
  const pkg = JSON.parse(await readFile(join(AGENT, 'package.json'), 'utf8')) as { bin: Record<string, string> };
  const [execStart] = directive(unit, 'ExecStart');
  assert.match(execStart!, new RegExp(`^/usr/bin/node (--\\S+ )*/opt/cairn-agent/${pkg.bin['cairn-agent']!.replace(/^\.\//, '')} run --config \\S+$`));
  // The memory bench measures the agent with the unit's node flags; this one is its ~30 MB saving.
  assert.match(execStart!, /^\/usr\/bin\/node (--\S+ )*--max-semi-space-size=1 /);
  assert.deepEqual(directive(unit, 'StateDirectory'), ['cairn-agent']);
  assert.deepEqual(directive(unit, 'Environment').filter((e) => e.startsWith('CAIRN_AGENT_STATE_DIR=')), ['CAIRN_AGENT_STATE_DIR=/var/lib/cairn-agent']);
  assert.deepEqual(directive(unit, 'Restart'), ['on-failure']);
  assert.deepEqual(directive(unit, 'KillSignal'), ['SIGTERM']);
});

test('systemd-analyze verify accepts the unit without a warning', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-unit-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  // verify checks that ExecStart's program exists: point it at this machine's node.
  const unit = (await readFile(UNIT, 'utf8')).replace('/usr/bin/node ', `${process.execPath} `);
  const path = join(dir, 'cairn-agent.service');
  await writeFile(path, unit);
  const { stdout, stderr } = await promisify(execFile)('systemd-analyze', ['verify', path]);
  assert.equal(`${stdout}${stderr}`.trim(), '');
});
