/**
 * The key hierarchy against a real hub, a real agent and the real `cairn` CLI: the root key made
 * offline (`cairn keys init --offline`), changes signed with it on the operator's side, rotation
 * and revocation seamless for an agent that pinned only the root, the security floor, and the
 * refusals of the keys API (coded errors, audit, admin only, no private material in answers).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { signDocument, type KeyringT, type SignedDesiredT } from '@cairn/shared';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { readRootKey } from '@cairn/hub/infra/keys.js';
import { connectDevice, startTestHub, type TestHub } from '../helpers/hub.js';
import { startPinnedAgent, infer } from '../helpers/agent.js';
import { CAIRN } from '../helpers/processes.js';
import { randomKey } from '../helpers/trust-fixtures.js';
import { waitFor } from '../helpers/wait.js';

const run = promisify(execFile);

/** `cairn …` against `hub` with its admin token; resolves with stdout, rejects on a non-zero exit. */
async function cairn(hub: TestHub, args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [CAIRN, ...args], { env: { ...process.env, CAIRN_HUB_URL: hub.httpUrl, CAIRN_TOKEN: hub.token } });
  return stdout;
}

async function push(hub: TestHub, version: string, seed: number): Promise<void> {
  const answer = await hub.api('POST', `/api/v1/models?name=demo&version=${version}`, buildDemoModel({ seed }).bytes);
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
}

async function deployAndCommit(hub: TestHub, deviceId: string, version: string): Promise<void> {
  const answer = await hub.api('POST', '/api/v1/deployments', { model: `demo@${version}`, deviceIds: [deviceId] });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  await waitFor(`${deviceId} commits demo@${version}`, async () => {
    const d = (await hub.api('GET', `/api/v1/devices/${deviceId}`)).body;
    return d.active?.version === version && d.deployment?.phase === 'committed' && d.deployment.deploymentId === answer.body.id;
  });
}

function keyringOfLiveDocument(hub: TestHub, deviceId: string): KeyringT {
  return (JSON.parse(hub.ctx.deployments.desiredFor(deviceId)!.document) as SignedDesiredT).document.keyring.keyring;
}

test('root offline: rotations and a revocation signed on the operator side reach an agent that pinned only the root, and new deployments keep installing', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'cairn-keys-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const dataDir = join(work, 'data');
  const rootKeyFile = join(work, 'usb', 'root.key');
  mkdirSync(join(work, 'usb'));
  await run(process.execPath, [CAIRN, 'keys', 'init', '--offline', '--root-key-out', rootKeyFile, '--data', dataDir]);
  assert.equal(statSync(rootKeyFile).mode & 0o777, 0o600);
  assert.ok(!existsSync(join(dataDir, 'keys', 'root.key')), 'the hub keeps no root seed');
  const rootSeed = readFileSync(rootKeyFile, 'utf8').trim();
  const scanForRoot = () => readdirSync(join(dataDir, 'keys')).filter((f) => readFileSync(join(dataDir, 'keys', f), 'utf8').includes(rootSeed));

  const hub = await startTestHub(t, { keepDataDir: dataDir });
  const before = (await hub.api('GET', '/api/v1/keys')).body;
  assert.equal(before.rootOnline, false);
  assert.equal(before.rootKeyId, readRootKey(rootKeyFile).keyId);
  assert.equal((await hub.api('GET', '/api/v1/trust')).body.rootPublicKey, before.rootPublicKey);

  await push(hub, '1.0.0', 1);
  const agent = await startPinnedAgent(t, hub, 'press-1');
  await waitFor('press-1 online', () => hub.ctx.devices.get('press-1')?.online);
  await deployAndCommit(hub, 'press-1', '1.0.0');

  // Without the root key a change is only a draft: nothing changes on the hub or the device.
  await assert.rejects(cairn(hub, ['keys', 'rotate', '--role', 'release']), /root key is offline/);
  assert.equal((await hub.api('GET', '/api/v1/keys')).body.keyringVersion, 1);
  assert.equal((await hub.api('GET', '/api/v1/keys')).body.draft.version, 2);

  const out = await cairn(hub, ['keys', 'rotate', '--role', 'release', '--root-key', rootKeyFile]);
  assert.match(out, /keyring version 2 installed with the root key file/);
  await cairn(hub, ['keys', 'rotate', '--role', 'director', '--root-key', rootKeyFile]);
  const rotated = (await hub.api('GET', '/api/v1/keys')).body;
  assert.equal(rotated.keyringVersion, 3);
  assert.equal(rotated.draft, null);
  const releases = rotated.keys.filter((k: { role: string }) => k.role === 'release');
  assert.deepEqual(releases.map((k: { status: string }) => k.status).sort(), ['signing', 'verify-only'], 'the previous release key stays listed, verify-only');
  const oldRelease = releases.find((k: { status: string }) => k.status === 'verify-only').keyId;
  assert.equal(rotated.keys.filter((k: { role: string }) => k.role === 'director').length, 1, 'the previous director key left the keyring');
  assert.deepEqual(scanForRoot(), [], 'the root seed never reached the hub');
  const shown = await cairn(hub, ['keys', 'show']);
  assert.match(shown, new RegExp(`root ${before.rootKeyId} \\(offline\\)`));
  assert.match(shown, /keyring v3/);
  assert.match(shown, new RegExp(`${oldRelease}.*verify-only`));

  // The live document was re-signed with the new keyring: the device took it without a new deployment.
  await waitFor('press-1 accepted keyring 3, as the hub sees it', async () => agent.status.keyringVersion === 3 && (await hub.api('GET', '/api/v1/devices/press-1')).body.keyringVersion === 3);
  assert.equal(keyringOfLiveDocument(hub, 'press-1').version, 3);

  await push(hub, '1.1.0', 2);
  await deployAndCommit(hub, 'press-1', '1.1.0');
  assert.equal((await infer(agent)).model?.version, '1.1.0');

  // Revoking the retired release key: 1.0.0 (signed by it) is re-signed by the current one and still deploys.
  await cairn(hub, ['keys', 'revoke', oldRelease, '--root-key', rootKeyFile]);
  const revoked = (await hub.api('GET', '/api/v1/keys')).body;
  assert.deepEqual(revoked.revoked, [oldRelease]);
  assert.ok(!revoked.keys.some((k: { keyId: string }) => k.keyId === oldRelease));
  const v1 = (await hub.api('GET', '/api/v1/models/demo/1.0.0')).body;
  assert.ok(!v1.signedBy.includes(oldRelease), `1.0.0 is no longer signed by the revoked key: ${JSON.stringify(v1.signedBy)}`);
  await waitFor('press-1 accepted keyring 4', () => agent.status.keyringVersion === 4);
  await deployAndCommit(hub, 'press-1', '1.0.0');
  assert.equal((await infer(agent)).model?.version, '1.0.0');

  // Every change is in the audit log; the key files left behind are only the signers'.
  const audit = (await hub.api('GET', '/api/v1/audit?action=keys.install')).body.entries;
  assert.equal(audit.length, 3);
  assert.equal(readdirSync(join(dataDir, 'keys')).filter((f) => f.endsWith('.key')).length, 2, 'one release and one director seed');
});

test('keys API: drafts must be signed by the root exactly, floors only rise and strand nobody, below-floor deployments are refused, admins only', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'cairn-keys-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const dataDir = join(work, 'data');
  const rootKeyFile = join(work, 'root.key');
  await run(process.execPath, [CAIRN, 'keys', 'init', '--offline', '--root-key-out', rootKeyFile, '--data', dataDir]);
  await assert.rejects(run(process.execPath, [CAIRN, 'keys', 'init', '--offline', '--root-key-out', join(work, 'again.key'), '--data', dataDir]), /already offline/);
  const hub = await startTestHub(t, { keepDataDir: dataDir });
  const root = readRootKey(rootKeyFile);

  const viewer = await hub.userToken('vera', 'viewer');
  const operator = await hub.userToken('otto', 'operator');
  assert.equal((await hub.request('GET', '/api/v1/keys', { token: viewer })).status, 200);
  for (const token of [viewer, operator]) assert.equal((await hub.request('POST', '/api/v1/keys/changes', { token, body: { rotate: 'release' } })).status, 403);

  assert.equal((await hub.api('PUT', '/api/v1/keys/keyring', { keyring: hub.ctx.keys.signedKeyring.keyring, signatures: hub.ctx.keys.signedKeyring.signatures })).body.code, 'CAIRN_NO_KEYRING_DRAFT');
  const { draft } = (await hub.api('POST', '/api/v1/keys/changes', { floor: 2 })).body as { draft: KeyringT };
  assert.equal(draft.securityFloor, 2);
  const forged = randomKey('root');
  assert.equal((await hub.api('PUT', '/api/v1/keys/keyring', { keyring: draft, signatures: [signDocument(draft, forged)] })).body.code, 'CAIRN_KEYRING_SIGNATURE');
  const altered = { ...draft, securityFloor: 1 };
  assert.equal((await hub.api('PUT', '/api/v1/keys/keyring', { keyring: altered, signatures: [signDocument(altered, root)] })).body.code, 'CAIRN_KEYRING_NOT_DRAFT');
  assert.equal((await hub.api('GET', '/api/v1/keys')).body.securityFloor, 0, 'nothing was installed');
  const installed = await hub.api('PUT', '/api/v1/keys/keyring', { keyring: draft, signatures: [signDocument(draft, root)] });
  assert.equal(installed.status, 200, JSON.stringify(installed.body));
  assert.equal(installed.body.securityFloor, 2);

  assert.equal((await hub.api('POST', '/api/v1/keys/changes', { floor: 1 })).body.code, 'CAIRN_FLOOR_LOWERED');
  assert.equal((await hub.api('POST', '/api/v1/keys/changes', { revoke: '0123456789abcdef' })).body.code, 'CAIRN_KEY_NOT_FOUND');
  assert.equal((await hub.api('POST', '/api/v1/keys/changes', { revoke: root.keyId })).body.code, 'CAIRN_KEY_NOT_FOUND', 'the root is not in the keyring: it is replaced by re-pinning, not revoked');
  assert.equal((await hub.api('POST', '/api/v1/keys/changes', { rotate: 'root' })).status, 400);

  await push(hub, '1.0.0', 1); // releaseCounter 1, below the floor
  await push(hub, '2.0.0', 2);
  await connectDevice(t, hub, 'kiln-1');
  await waitFor('kiln-1 known', () => hub.ctx.devices.get('kiln-1'));
  const below = await hub.api('POST', '/api/v1/deployments', { model: 'demo@1.0.0', deviceIds: ['kiln-1'] });
  assert.equal(below.body.code, 'CAIRN_BELOW_FLOOR', JSON.stringify(below.body));
  assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'demo@2.0.0', deviceIds: ['kiln-1'] })).status, 201);
  const strands = await hub.api('POST', '/api/v1/keys/changes', { floor: 3 });
  assert.equal(strands.body.code, 'CAIRN_FLOOR_STRANDS_DEVICES');
  assert.match(strands.body.message, /kiln-1/);

  // No answer of the keys API carries a seed.
  const seeds = readdirSync(join(dataDir, 'keys')).filter((f) => f.endsWith('.key')).map((f) => readFileSync(join(dataDir, 'keys', f), 'utf8').trim());
  const answers = JSON.stringify([(await hub.api('GET', '/api/v1/keys')).body, installed.body, draft]);
  for (const seed of [...seeds, readFileSync(rootKeyFile, 'utf8').trim()]) assert.ok(!answers.includes(seed));
});

test('an online root moves offline; a hub whose keyring and keys have expired still starts, warns, and the next change renews them', async (t) => {
  const work = mkdtempSync(join(tmpdir(), 'cairn-keys-'));
  t.after(() => rmSync(work, { recursive: true, force: true }));
  const dataDir = join(work, 'data');
  const rootKeyFile = join(work, 'root.key');
  const first = await startTestHub(t, { keepDataDir: dataDir });
  assert.equal(first.ctx.keys.rootOnline, true, 'a first start makes an online root');
  const rootKeyId = first.ctx.keys.rootKeyId;
  await first.close();
  const { stdout } = await run(process.execPath, [CAIRN, 'keys', 'init', '--offline', '--root-key-out', rootKeyFile, '--data', dataDir]);
  assert.match(stdout, /moved root key/);
  assert.equal(readRootKey(rootKeyFile).keyId, rootKeyId, 'the root devices pinned is the one moved');

  const twoYearsLater = Date.now() + 2 * 365 * 24 * 3600 * 1000;
  const lines: string[] = [];
  const hub = await startTestHub(t, { keepDataDir: dataDir, clock: () => twoYearsLater, logger: pino({ level: 'warn' }, { write: (line: string) => lines.push(line) }) });
  const stale = (await hub.api('GET', '/api/v1/keys')).body;
  assert.equal(stale.rootOnline, false);
  assert.equal(stale.rootKeyId, rootKeyId);
  assert.ok(lines.some((l) => l.includes(`keyring version 1 expires`)), lines.join('\n'));
  assert.ok(lines.some((l) => l.includes('the director key')));

  // Raising the floor to what it is changes nothing but renews: expired signers are replaced.
  await cairn(hub, ['keys', 'floor', '0', '--root-key', rootKeyFile]);
  const renewed = (await hub.api('GET', '/api/v1/keys')).body;
  assert.equal(renewed.keyringVersion, 2);
  assert.ok(Date.parse(renewed.keyringExpiresAt) > twoYearsLater);
  assert.deepEqual(renewed.keys.filter((k: { role: string }) => k.role !== 'root').map((k: { status: string; expiresAt: number }) => [k.status, k.expiresAt > twoYearsLater]), [
    ['signing', true],
    ['signing', true],
  ]);
});
