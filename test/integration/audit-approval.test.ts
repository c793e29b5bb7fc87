/**
 * The approval policy (four eyes beyond a canary) and the audit log: every state-changing action
 * leaves a row naming who, from where, what and the change; `cairn audit verify` passes on the
 * intact file and names the first bad row after an edit, a deleted middle row, a truncated tail,
 * and — with an anchor kept elsewhere — a consistently rewritten tail.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { rowHash, type AuditRow } from '@cairn/hub/modules/audit/audit-log.js';
import { connectDevice, startTestHub } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';

const CAIRN = join(resolve(import.meta.dirname, '../../..'), 'hub/dist/cli/main.js');
const CSRF = { 'x-cairn-csrf': '1' };

test('approval: an unapproved version reaches one device (the canary), never more in one step or several; self-approval is refused; a second operator unlocks the fleet', async (t) => {
  const hub = await startTestHub(t);
  const alice = await hub.userToken('alice', 'operator');
  const bob = await hub.userToken('bob', 'operator');
  const viewer = await hub.userToken('vic', 'viewer');
  const ids = ['cell-1', 'cell-2', 'cell-3'];
  for (const id of ids) await connectDevice(t, hub, id);
  await waitFor('devices known', () => hub.ctx.devices.list().length === ids.length);
  assert.equal((await hub.request('POST', '/api/v1/models?name=pdm&version=1.0.0', { token: alice, body: buildDemoModel({ seed: 1 }).bytes })).status, 201);
  const deploy = (token: string, deviceIds: string[]) => hub.request('POST', '/api/v1/deployments', { token, body: { model: 'pdm@1.0.0', deviceIds } });

  const fleet = await deploy(alice, ids);
  assert.equal(fleet.status, 409);
  assert.equal(fleet.body.code, 'CAIRN_APPROVAL_REQUIRED');
  assert.match(fleet.body.message, /at most 1 device/);
  assert.equal((await hub.api('GET', '/api/v1/deployments')).body.deployments.length, 0, 'nothing signed');
  assert.equal((await deploy(alice, ['cell-1'])).status, 201, 'the canary');
  assert.equal((await deploy(alice, ['cell-1'])).status, 201, 'the same canary again');
  assert.equal((await deploy(bob, ['cell-2'])).body.code, 'CAIRN_APPROVAL_REQUIRED', 'one device at a time does not add up to a fleet');

  const self = await hub.request('POST', '/api/v1/models/pdm/1.0.0/approve', { token: alice });
  assert.equal(self.status, 403);
  assert.equal(self.body.code, 'CAIRN_SELF_APPROVAL');
  assert.equal((await hub.request('POST', '/api/v1/models/pdm/1.0.0/approve', { token: viewer })).body.code, 'CAIRN_FORBIDDEN');
  const approved = await hub.request('POST', '/api/v1/models/pdm/1.0.0/approve', { token: bob });
  assert.equal(approved.status, 200);
  assert.deepEqual([approved.body.pushedBy, approved.body.approvedBy], ['user:alice', ['user:bob']]);
  assert.equal((await hub.request('POST', '/api/v1/models/pdm/1.0.0/approve', { token: bob })).status, 200, 'idempotent');
  assert.equal((await deploy(alice, ids)).status, 201, 'approved: the whole fleet');

  // The admin is not exempt either: an admin's own push needs someone else.
  await hub.api('POST', '/api/v1/models?name=pdm&version=2.0.0', buildDemoModel({ seed: 2 }).bytes);
  assert.equal((await hub.api('POST', '/api/v1/models/pdm/2.0.0/approve')).body.code, 'CAIRN_SELF_APPROVAL');
  assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'pdm@2.0.0', selector: '' })).body.code, 'CAIRN_APPROVAL_REQUIRED');
});

test('the canary size is a setting', async (t) => {
  const hub = await startTestHub(t, { approval: { canaryDevices: 2 } });
  for (const id of ['a-1', 'a-2', 'a-3']) await connectDevice(t, hub, id);
  await waitFor('devices known', () => hub.ctx.devices.list().length === 3);
  await hub.api('POST', '/api/v1/models?name=pdm&version=1.0.0', buildDemoModel({ seed: 1 }).bytes);
  assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: ['a-1', 'a-2'] })).status, 201);
  assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: ['a-3'] })).status, 409);
});

test('audit: every state-changing action is a row with actor, credential, source address and change; filters and pages; operators and admins read it', async (t) => {
  const hub = await startTestHub(t);
  const olivia = await hub.userToken('olivia', 'operator');
  const viewer = await hub.userToken('val', 'viewer');
  await connectDevice(t, hub, 'press-1');
  await waitFor('device known', () => hub.ctx.devices.get('press-1') !== null);
  await hub.request('POST', '/api/v1/models?name=pdm&version=1.0.0', { token: olivia, body: buildDemoModel({ seed: 1 }).bytes });
  await hub.approve('pdm@1.0.0');
  await hub.request('PUT', '/api/v1/devices/press-1/labels', { token: olivia, body: { labels: { site: 'plant-2' } } });
  const deployment = await hub.request('POST', '/api/v1/deployments', { token: olivia, body: { model: 'pdm@1.0.0', selector: 'site=plant-2' } });
  const upload = await hub.request('POST', '/api/v1/uploads', { token: olivia, body: new Uint8Array([1, 2, 3]) });
  await hub.request('POST', '/api/v1/session', { body: { username: 'olivia', password: 'not-her-password' }, headers: CSRF });
  const cookie = await hub.login('val', (await hub.api('POST', '/api/v1/users/val/password')).body.password);
  await hub.request('DELETE', '/api/v1/session', { cookie, headers: CSRF });
  await hub.api('PATCH', '/api/v1/users/val', { role: 'operator' });
  const tokenId = (await hub.request('GET', '/api/v1/tokens', { token: olivia })).body.tokens[0].id;
  await hub.api('DELETE', `/api/v1/tokens/${tokenId}`);

  assert.equal((await hub.request('GET', '/api/v1/audit', { token: viewer })).status, 403, "val is an operator now, but the token was made as a viewer's and stays one");
  const { entries } = (await hub.api('GET', '/api/v1/audit?limit=1000')).body as { entries: { id: number; actor: string; credential: string | null; sourceIp: string | null; action: string; target: string; before: any; after: any }[] };
  const find = (action: string, target?: string) => {
    const entry = entries.find((e) => e.action === action && (target === undefined || e.target === target));
    assert.ok(entry, `${action} ${target ?? ''} in ${entries.map((e) => e.action).join(', ')}`);
    return entry;
  };
  assert.deepEqual(entries.map((e) => e.id), entries.map((_, i) => entries.length - i), 'newest first, no gaps');
  assert.equal(find('user.create', 'user:admin').actor, 'system');
  assert.ok(entries.some((e) => e.action === 'token.create' && e.actor === 'system' && e.after.name === 'admin-token'), 'the admin-token file');
  const push = find('model.publish', 'model:pdm@1.0.0');
  assert.equal(push.actor, 'user:olivia');
  assert.match(push.credential!, /^token:tok_/);
  assert.match(push.sourceIp!, /127\.0\.0\.1/);
  assert.equal(find('model.approve', 'model:pdm@1.0.0').actor, 'user:reviewer');
  assert.deepEqual([find('device.labels', 'device:press-1').before, find('device.labels').after], [{ operatorLabels: {} }, { operatorLabels: { site: 'plant-2' } }]);
  assert.equal(find('deployment.create', `deployment:${deployment.body.id}`).after.devices, 1);
  assert.equal(find('upload.store', `blob:${upload.body.digest}`).after.size, 3);
  const failed = find('session.login_failed', 'user:olivia');
  assert.deepEqual([failed.actor, failed.after], ['anonymous', { reason: 'bad_password' }]);
  assert.match(find('session.login', 'user:val').credential!, /^session:[0-9a-f]{12}$/);
  assert.equal(find('session.logout', 'user:val').actor, 'user:val');
  assert.deepEqual([find('user.update', 'user:val').before.role, find('user.update', 'user:val').after.role], ['viewer', 'operator']);
  assert.equal(find('user.password_reset', 'user:val').actor, 'user:admin');
  assert.notEqual(find('token.revoke', `token:${tokenId}`).after.revokedAt, null);

  // Filters, and pages that chain through `nextCursor`.
  const byOlivia = (await hub.api('GET', '/api/v1/audit?actor=olivia')).body.entries;
  assert.ok(byOlivia.length >= 4 && byOlivia.every((e: { actor: string }) => e.actor === 'user:olivia'));
  assert.deepEqual((await hub.api('GET', '/api/v1/audit?target=model:pdm@*')).body.entries.map((e: { action: string }) => e.action), ['model.approve', 'model.publish']);
  assert.equal((await hub.api('GET', `/api/v1/audit?action=model.publish&from=${new Date(Date.now() + 60_000).toISOString()}`)).body.entries.length, 0);
  const pages: number[] = [];
  for (let cursor: number | null = null, guard = 0; guard < 100; guard++) {
    const page: { entries: { id: number }[]; nextCursor: number | null } = (await hub.api('GET', `/api/v1/audit?limit=7${cursor ? `&cursor=${cursor}` : ''}`)).body;
    pages.push(...page.entries.map((e) => e.id));
    cursor = page.nextCursor;
    if (cursor === null) break;
  }
  assert.deepEqual(pages, entries.map((e) => e.id));
  assert.equal((await hub.api('GET', '/api/v1/audit?from=yesterday')).body.code, 'CAIRN_BAD_REQUEST');
  assert.equal((await hub.api('GET', '/api/v1/audit/head')).body.id, entries[0]!.id);

  // Append-only inside the hub's own database connection too.
  assert.throws(() => hub.ctx.db.prepare("UPDATE audit_log SET actor = 'someone-else' WHERE id = 1").run(), /append-only/);
  assert.throws(() => hub.ctx.db.prepare('DELETE FROM audit_log WHERE id = 1').run(), /append-only/);
});

test('cairn audit verify: intact, then an edited row, a deleted middle row, a truncated tail and a rewritten tail (anchor) are each named', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-audit-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const hub = await startTestHub(t, { keepDataDir: dataDir });
  for (const name of ['u1', 'u2', 'u3']) await hub.createUser(name, 'viewer');
  const anchor = (await hub.api('GET', '/api/v1/audit/head')).body as { id: number; hash: string };
  assert.equal(anchor.id, 6, "admin, admin-token, the test hub's enrollment token, three users");
  const verify = async (dir: string, ...extra: string[]) => {
    try {
      const { stdout } = await promisify(execFile)(process.execPath, [CAIRN, 'audit', 'verify', '--data', dir, '--json', ...extra]);
      return { code: 0, report: JSON.parse(stdout) };
    } catch (err) {
      const e = err as { code: number; stdout: string };
      return { code: e.code, report: JSON.parse(e.stdout) };
    }
  };
  const live = await verify(dataDir, '--anchor', `${anchor.id}:${anchor.hash}`);
  assert.deepEqual([live.code, live.report.ok, live.report.rows], [0, true, 6], 'verifies while the hub runs');
  await hub.close();

  /** A copy of the database with `tamper` applied by someone who drops the triggers first. */
  const tampered = (name: string, tamper: (db: Database.Database) => void) => {
    const dir = join(dataDir, name);
    mkdirSync(dir);
    copyFileSync(join(dataDir, 'cairn.db'), join(dir, 'cairn.db'));
    const db = new Database(join(dir, 'cairn.db'));
    db.exec('DROP TRIGGER audit_log_no_update; DROP TRIGGER audit_log_no_delete; DROP TRIGGER audit_head_forward;');
    tamper(db);
    db.close();
    return dir;
  };
  const expectProblem = async (dir: string, id: number, reason: string, ...extra: string[]) => {
    const { code, report } = await verify(dir, ...extra);
    assert.equal(code, 1, `${dir}: ${JSON.stringify(report)}`);
    assert.deepEqual([report.problem.id, report.problem.reason], [id, reason], report.problem.message);
  };

  assert.equal((await verify(dataDir)).code, 0);
  await expectProblem(tampered('edited', (db) => db.prepare(`UPDATE audit_log SET after = '{"disabled":false,"role":"admin","username":"u2"}' WHERE id = 4`).run()), 4, 'hash_mismatch');
  await expectProblem(tampered('rehashed', (db) => {
    const row = db.prepare('SELECT * FROM audit_log WHERE id = 4').get() as AuditRow;
    const edited = { ...row, actor: 'system' };
    db.prepare('UPDATE audit_log SET actor = ?, hash = ? WHERE id = 4').run(edited.actor, rowHash(edited));
  }), 5, 'prev_hash_mismatch');
  await expectProblem(tampered('deleted', (db) => db.prepare('DELETE FROM audit_log WHERE id = 3').run()), 4, 'id_gap');
  await expectProblem(tampered('truncated', (db) => db.prepare('DELETE FROM audit_log WHERE id >= 5').run()), 5, 'tail_missing');
  // A careful attacker also rewinds the head and SQLite's counter, and re-chains a new row 5:
  // the chain is consistent again; only the anchor kept off the hub catches it.
  const rewritten = tampered('rewritten', (db) => {
    db.prepare('DELETE FROM audit_log WHERE id >= 5').run();
    const four = db.prepare('SELECT * FROM audit_log WHERE id = 4').get() as AuditRow;
    const five = { ...four, id: 5, action: 'user.update', prev_hash: four.hash };
    const six = { ...five, id: 6, prev_hash: rowHash(five) };
    for (const row of [five, six]) db.prepare('INSERT INTO audit_log VALUES (@id, @at, @actor, @credential, @source_ip, @action, @target, @before, @after, @prev_hash, @hash)').run({ ...row, hash: rowHash(row) });
    db.prepare('UPDATE audit_head SET last_id = 6, last_hash = ?').run(rowHash(six));
  });
  assert.equal((await verify(rewritten)).code, 0, 'without an anchor the rewrite is consistent (documented limit)');
  await expectProblem(rewritten, 6, 'anchor_mismatch', '--anchor', `${anchor.id}:${anchor.hash}`);
});
