/**
 * Operators, roles, API tokens and console sessions over the real HTTP socket: the access table
 * covers every route, each role gets exactly what the table says, credentials fail closed
 * (expired, revoked, disabled, demoted), session cookies are HttpOnly and SameSite=Strict, the
 * CSRF rule holds, logins are throttled, and no secret reaches a response or a log line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { buildHub, loadHubConfig } from '@cairn/hub';
import { COMMANDS } from '@cairn/shared';
import { ACCESS_TABLE, accessRule, checkAccess, roleRank, type Principal, type Role } from '@cairn/hub/modules/operators/access.js';
import { startTestHub, type RequestOptions } from '../helpers/hub.js';

const CSRF = { 'x-cairn-csrf': '1' };

test('every registered route is in the access table, the table names no route that does not exist, and an unlisted route is denied to admins too', async (t) => {
  const hub = await startTestHub(t);
  const missing = hub.routes.filter((r) => {
    const [method, url] = r.split(' ') as [string, string];
    return accessRule(method, url) === undefined;
  });
  assert.deepEqual(missing, []);
  const registered = new Set(hub.routes);
  const stale = Object.keys(ACCESS_TABLE).filter((key) => !key.startsWith('CMD ') && !registered.has(key));
  assert.deepEqual(stale, []);

  // Hub → device commands go through the same table and check.
  const as = (role: Role): Principal => ({ userId: 1, username: 'x', role, scopes: null, via: { kind: 'token', id: 'tok_x' } });
  for (const command of COMMANDS) {
    const rule = accessRule('CMD', command);
    assert.ok(rule, `CMD ${command} in the table`);
    assert.equal(checkAccess(as('viewer'), rule, `CMD ${command}`)?.code, 'CAIRN_FORBIDDEN');
    assert.equal(checkAccess(as('operator'), rule, `CMD ${command}`), null);
    assert.equal(checkAccess({ ...as('admin'), scopes: ['devices:read'] }, rule, `CMD ${command}`)?.code, 'CAIRN_TOKEN_SCOPE');
  }
  assert.equal(checkAccess(as('admin'), accessRule('CMD', 'format-disk'), 'CMD format-disk')?.code, 'CAIRN_ACCESS_UNDEFINED');

  // A module that adds a route and forgets the table: denied to everyone, the admin included.
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-hub-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const built = await buildHub(loadHubConfig({ env: {}, overrides: { dataDir, logLevel: 'silent', http: { port: 0 }, mqtt: { port: 0 } } }));
  t.after(() => built.app.close());
  built.app.get('/api/v1/forgotten', async () => ({ secret: 'data' }));
  const token = readFileSync(built.adminToken.tokenFile, 'utf8').trim();
  const answer = await built.app.inject({ method: 'GET', url: '/api/v1/forgotten', headers: { authorization: `Bearer ${token}` } });
  assert.equal(answer.statusCode, 403);
  assert.equal(answer.json().code, 'CAIRN_ACCESS_UNDEFINED');
});

test('roles: viewer, operator and admin against representative routes get 2xx/4xx past the check or 403 naming the role', async (t) => {
  const hub = await startTestHub(t);
  const tokens: Record<Role, string> = { viewer: await hub.userToken('vera', 'viewer'), operator: await hub.userToken('otto', 'operator'), admin: hub.token };
  // [method, path, body, least role, status once past the access check]
  const cases: [string, string, unknown, Role, number][] = [
    ['GET', '/api/v1/devices', undefined, 'viewer', 200],
    ['GET', '/api/v1/models', undefined, 'viewer', 200],
    ['GET', '/api/v1/deployments', undefined, 'viewer', 200],
    ['GET', '/api/v1/keys', undefined, 'viewer', 200],
    ['GET', '/metrics', undefined, 'viewer', 200],
    ['GET', '/api/v1/models/pdm/1.0.0/blob', undefined, 'operator', 404],
    ['PUT', '/api/v1/devices/ghost/labels', { labels: { site: 'a' } }, 'operator', 404],
    ['POST', '/api/v1/deployments', { model: 'nope@1.0.0', selector: '' }, 'operator', 404],
    ['POST', '/api/v1/models/pdm/1.0.0/approve', undefined, 'operator', 404],
    ['GET', '/api/v1/audit', undefined, 'operator', 200],
    ['GET', '/api/v1/users', undefined, 'admin', 200],
    ['PATCH', '/api/v1/users/nobody', { role: 'viewer' }, 'admin', 404],
  ];
  for (const [method, path, body, least, passed] of cases) {
    for (const role of ['viewer', 'operator', 'admin'] as const) {
      const answer = await hub.request(method, path, { token: tokens[role], body });
      const what = `${role} ${method} ${path}`;
      if (roleRank(role) >= roleRank(least)) {
        assert.equal(answer.status, passed, `${what}: ${JSON.stringify(answer.body)}`);
      } else {
        assert.equal(answer.status, 403, what);
        assert.equal(answer.body.code, 'CAIRN_FORBIDDEN', what);
        assert.match(answer.body.message, new RegExp(`needs the ${least} role`), what);
      }
    }
  }
  // Public routes need nothing.
  for (const path of ['/healthz', '/api/v1/trust', '/']) assert.equal((await fetch(hub.httpUrl + path)).status, 200, path);
});

test('401 for missing, malformed, unknown, expired, revoked and disabled-owner credentials', async (t) => {
  let now = Date.now();
  const hub = await startTestHub(t, { clock: () => now });
  const operator = await hub.userToken('olga', 'operator');
  const shortLived = (await hub.request('POST', '/api/v1/tokens', { token: operator, body: { name: 'ci', ttlSeconds: 60 } })).body.secret as string;
  const revoked = await hub.request('POST', '/api/v1/tokens', { token: operator, body: { name: 'old' } });
  assert.notEqual((await hub.request('DELETE', `/api/v1/tokens/${revoked.body.token.id}`, { token: operator })).body.revokedAt, null);
  assert.equal((await hub.request('GET', '/api/v1/devices', { token: shortLived })).status, 200);

  now += 61_000;
  const unauthorized: RequestOptions[] = [
    { headers: {} },
    { headers: { authorization: 'Bearer cairn_wrong' } },
    { headers: { authorization: `Basic ${hub.token}` } },
    { headers: { authorization: `Bearer ${hub.token} extra` } },
    { token: shortLived },
    { token: revoked.body.secret as string },
    { cookie: 'cairn_session=not-a-session' },
  ];
  for (const credentials of unauthorized) {
    const answer = await hub.request('GET', '/api/v1/devices', credentials);
    assert.equal(answer.status, 401, JSON.stringify(credentials));
    assert.equal(answer.body.code, 'CAIRN_UNAUTHORIZED');
  }
  // Disabling the owner stops their tokens at once; enabling brings them back.
  assert.equal((await hub.api('PATCH', '/api/v1/users/olga', { disabled: true })).status, 200);
  assert.equal((await hub.request('GET', '/api/v1/devices', { token: operator })).status, 401);
  assert.equal((await hub.api('PATCH', '/api/v1/users/olga', { disabled: false })).status, 200);
  assert.equal((await hub.request('GET', '/api/v1/devices', { token: operator })).status, 200);
});

test("tokens: never above the creator's role or scopes, capped by the owner's current role, scoped to the table's scopes, own list only", async (t) => {
  const hub = await startTestHub(t);
  const operator = await hub.userToken('omar', 'operator');
  const other = await hub.userToken('oona', 'operator');

  const above = await hub.request('POST', '/api/v1/tokens', { token: operator, body: { name: 'x', role: 'admin' } });
  assert.equal(above.status, 403);
  assert.equal(above.body.code, 'CAIRN_ROLE_ABOVE_OWN');
  assert.match(above.body.message, /^role:/);

  const bad = await hub.request('POST', '/api/v1/tokens', { token: operator, body: { name: 'x', scopes: ['everything'] } });
  assert.equal(bad.status, 400);
  assert.match(bad.body.message, /scopes/);
  assert.equal((await hub.request('POST', '/api/v1/tokens', { token: operator, body: { name: 'x', ttlSeconds: 10 } })).body.code, 'CAIRN_BAD_REQUEST');

  const scoped = await hub.request('POST', '/api/v1/tokens', { token: operator, body: { name: 'grafana', role: 'viewer', scopes: ['devices:read', 'tokens'] } });
  assert.equal(scoped.status, 201);
  assert.deepEqual([scoped.body.token.role, scoped.body.token.scopes, scoped.body.token.owner], ['viewer', ['devices:read', 'tokens'], 'omar']);
  const secret = scoped.body.secret as string;
  assert.match(secret, /^cairn_/);
  assert.equal((await hub.request('GET', '/api/v1/devices', { token: secret })).status, 200);
  const outOfScope = await hub.request('GET', '/api/v1/models', { token: secret });
  assert.equal(outOfScope.status, 403);
  assert.equal(outOfScope.body.code, 'CAIRN_TOKEN_SCOPE');
  assert.match(outOfScope.body.message, /models:read/);
  // A scoped token can mint tokens only within its own scopes (and role).
  assert.equal((await hub.request('POST', '/api/v1/tokens', { token: secret, body: { name: 'wider', scopes: ['models:read'] } })).body.code, 'CAIRN_SCOPE_ABOVE_OWN');
  const narrower = await hub.request('POST', '/api/v1/tokens', { token: secret, body: { name: 'same' } });
  assert.deepEqual([narrower.body.token.role, narrower.body.token.scopes], ['viewer', ['devices:read', 'tokens']]);

  // Demoting the owner demotes the tokens they already have.
  assert.equal((await hub.request('POST', '/api/v1/deployments', { token: operator, body: { model: 'a@1.0.0', selector: '' } })).status, 404);
  await hub.api('PATCH', '/api/v1/users/omar', { role: 'viewer' });
  assert.equal((await hub.request('POST', '/api/v1/deployments', { token: operator, body: { model: 'a@1.0.0', selector: '' } })).body.code, 'CAIRN_FORBIDDEN');
  assert.equal((await hub.request('GET', '/api/v1/session', { token: operator })).body.role, 'viewer');

  // Each sees their own tokens, never a secret; someone else's token is "not found"; the admin sees all.
  const own = await hub.request('GET', '/api/v1/tokens', { token: operator });
  assert.ok(own.body.tokens.every((tk: { owner: string }) => tk.owner === 'omar'));
  assert.ok(own.body.tokens.some((tk: { lastUsedAt: string | null }) => tk.lastUsedAt !== null), 'last use recorded');
  assert.ok(!JSON.stringify(own.body).includes(secret));
  const othersToken = (await hub.request('GET', '/api/v1/tokens', { token: other })).body.tokens[0].id;
  assert.equal((await hub.request('DELETE', `/api/v1/tokens/${othersToken}`, { token: operator })).body.code, 'CAIRN_TOKEN_NOT_FOUND');
  const all = (await hub.api('GET', '/api/v1/tokens')).body.tokens.map((tk: { owner: string; name: string }) => `${tk.owner}/${tk.name}`);
  assert.ok(all.includes('admin/admin-token') && all.includes('oona/test') && all.includes('omar/grafana'), all.join(' '));
});

test('console sessions: HttpOnly SameSite=Strict cookie, whoami, CSRF header on state changes, idle and absolute expiry, logout', async (t) => {
  let now = Date.now();
  const hub = await startTestHub(t, { clock: () => now });
  const password = await hub.createUser('sam', 'operator');

  const noCsrf = await hub.request('POST', '/api/v1/session', { body: { username: 'sam', password } });
  assert.equal(noCsrf.status, 403);
  assert.equal(noCsrf.body.code, 'CAIRN_CSRF');

  const login = await hub.request('POST', '/api/v1/session', { body: { username: 'sam', password }, headers: CSRF });
  assert.equal(login.status, 200);
  assert.deepEqual([login.body.username, login.body.role], ['sam', 'operator']);
  const setCookie = login.headers.get('set-cookie')!;
  const attributes = setCookie.split(';').map((a) => a.trim());
  assert.match(attributes[0]!, /^cairn_session=[A-Za-z0-9_-]{43}$/);
  for (const attribute of ['HttpOnly', 'SameSite=Strict', 'Path=/', 'Max-Age=43200']) assert.ok(attributes.includes(attribute), `${attribute} in ${setCookie}`);
  assert.ok(!attributes.includes('Secure'), 'plain HTTP: not Secure until TLS (auth.cookieSecure)');
  const cookie = attributes[0]!;

  assert.deepEqual((await hub.request('GET', '/api/v1/session', { cookie })).body, { username: 'sam', role: 'operator', via: 'session', scopes: null });
  // The cookie alone cannot change state (a cross-site form could send it); the header can.
  const labels = { labels: { site: 'x' } };
  const forged = await hub.request('PUT', '/api/v1/devices/ghost/labels', { cookie, body: labels });
  assert.equal(forged.status, 403);
  assert.equal(forged.body.code, 'CAIRN_CSRF');
  assert.equal((await hub.request('PUT', '/api/v1/devices/ghost/labels', { cookie, body: labels, headers: CSRF })).body.code, 'CAIRN_DEVICE_NOT_FOUND');
  // A Bearer token is never sent by a browser on its own: no header needed.
  assert.equal((await hub.api('PUT', '/api/v1/devices/ghost/labels', labels)).body.code, 'CAIRN_DEVICE_NOT_FOUND');

  // Idle expiry (60 min by default), refreshed by use.
  now += 50 * 60_000;
  assert.equal((await hub.request('GET', '/api/v1/devices', { cookie })).status, 200);
  now += 50 * 60_000;
  assert.equal((await hub.request('GET', '/api/v1/devices', { cookie })).status, 200, 'used 50 min ago');
  now += 61 * 60_000;
  assert.equal((await hub.request('GET', '/api/v1/devices', { cookie })).status, 401, 'idle for 61 min');

  // Absolute expiry: 12 h after login, however active.
  const fresh = await hub.login('sam', password);
  for (let step = 1; step <= 14; step++) {
    now += 50 * 60_000;
    assert.equal((await hub.request('GET', '/api/v1/devices', { cookie: fresh })).status, 200, `${step * 50} min after login`);
  }
  now += 50 * 60_000;
  assert.equal((await hub.request('GET', '/api/v1/devices', { cookie: fresh })).status, 401, '12 h 30 min after login');

  // Logout clears the cookie and ends the session on the hub: the old cookie is refused.
  const third = await hub.login('sam', password);
  const logout = await hub.request('DELETE', '/api/v1/session', { cookie: third, headers: CSRF });
  assert.equal(logout.status, 204);
  assert.match(logout.headers.get('set-cookie')!, /^cairn_session=; .*Max-Age=0/);
  assert.equal((await hub.request('GET', '/api/v1/session', { cookie: third })).status, 401);

  const secure = await startTestHub(t, { auth: { cookieSecure: true } });
  const securePassword = readFileSync(secure.adminPasswordFile, 'utf8').trim();
  const secureLogin = await secure.request('POST', '/api/v1/session', { body: { username: 'admin', password: securePassword }, headers: CSRF });
  assert.ok(secureLogin.headers.get('set-cookie')!.split(';').map((a) => a.trim()).includes('Secure'));
});

test('logins are throttled per username and address: 429 with retry-after, doubling, even for the right password', async (t) => {
  let now = Date.now();
  const hub = await startTestHub(t, { clock: () => now });
  const password = await hub.createUser('lena', 'viewer');
  const attempt = (username: string, pw: string) => hub.request('POST', '/api/v1/session', { body: { username, password: pw }, headers: CSRF });

  for (let i = 0; i < 5; i++) {
    const failed = await attempt('lena', `wrong-${i}`);
    assert.equal(failed.status, 401);
    assert.equal(failed.body.code, 'CAIRN_BAD_CREDENTIALS');
  }
  const locked = await attempt('lena', password);
  assert.equal(locked.status, 429);
  assert.equal(locked.body.code, 'CAIRN_LOGIN_LOCKED');
  assert.equal(locked.headers.get('retry-after'), '30');
  // The address is locked too: guessing another user's password from here waits as well.
  assert.equal((await attempt('someone-else', 'x')).status, 429);

  now += 31_000;
  assert.equal((await attempt('lena', 'wrong-again')).status, 401);
  const doubled = await attempt('lena', password);
  assert.equal(doubled.status, 429);
  assert.equal(doubled.headers.get('retry-after'), '60');
  now += 61_000;
  assert.equal((await attempt('lena', password)).status, 200, 'the right password once the lock ends');

  // An unknown username fails exactly like a wrong password (no enumeration); the address's count
  // was not cleared by lena's success, so it locks again at once, whatever x-forwarded-for says.
  const unknown = await attempt('ghost', 'x');
  assert.deepEqual([unknown.status, unknown.body.message], [401, 'wrong username or password']);
  const spoofed = await hub.request('POST', '/api/v1/session', { body: { username: 'ghost', password: 'y' }, headers: { ...CSRF, 'x-forwarded-for': '10.0.0.9' } });
  assert.equal(spoofed.status, 429);

  const metrics: string = (await hub.api('GET', '/metrics')).body;
  assert.match(metrics, /cairn_hub_login_failures_total\{reason="bad_credentials"\} 7\n/);
  assert.match(metrics, /cairn_hub_login_failures_total\{reason="locked"\} 4\n/);
});

test('users: bad input is a coded 400 naming the field, the last admin stays, a password reset ends sessions; no secret in any response or log line', async (t) => {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const hub = await startTestHub(t, { logger: pino({ level: 'trace' }, sink) });
  const adminPassword = readFileSync(hub.adminPasswordFile, 'utf8').trim();
  for (const file of [hub.adminPasswordFile, hub.adminToken.tokenFile]) assert.equal(statSync(file).mode & 0o777, 0o600, file);

  for (const [body, field] of [
    [{ username: 'Upper', role: 'viewer' }, 'username'],
    [{ username: 'ok', role: 'root' }, 'role'],
    [{ username: 'ok', role: 'viewer', password: 'short' }, 'password'],
  ] as const) {
    const answer = await hub.api('POST', '/api/v1/users', body);
    assert.equal(answer.status, 400, JSON.stringify(body));
    assert.equal(answer.body.code, 'CAIRN_BAD_REQUEST');
    assert.match(answer.body.message, new RegExp(field));
  }
  const created = await hub.api('POST', '/api/v1/users', { username: 'pat', role: 'admin' });
  assert.equal(created.status, 201);
  const patPassword = created.body.password as string;
  assert.equal((await hub.api('POST', '/api/v1/users', { username: 'pat', role: 'viewer' })).body.code, 'CAIRN_USER_EXISTS');

  // The last enabled admin cannot be demoted or disabled; with two, one can.
  assert.equal((await hub.api('PATCH', '/api/v1/users/pat', { role: 'operator' })).status, 200);
  for (const change of [{ role: 'viewer' }, { disabled: true }]) {
    const refused = await hub.api('PATCH', '/api/v1/users/admin', change);
    assert.equal(refused.status, 409, JSON.stringify(change));
    assert.equal(refused.body.code, 'CAIRN_LAST_ADMIN');
  }

  const session = await hub.login('pat', patPassword);
  const wrong = 'correct-horse-battery-wrong';
  assert.equal((await hub.request('POST', '/api/v1/session', { body: { username: 'pat', password: wrong }, headers: CSRF })).status, 401);
  const reset = await hub.api('POST', '/api/v1/users/pat/password');
  assert.equal(reset.status, 200);
  assert.equal((await hub.request('GET', '/api/v1/session', { cookie: session })).status, 401, 'a reset ends the sessions');
  assert.equal((await hub.request('POST', '/api/v1/session', { body: { username: 'pat', password: patPassword }, headers: CSRF })).status, 401, 'the old password is gone');
  const newSession = await hub.login('pat', reset.body.password);
  const token = (await hub.request('POST', '/api/v1/tokens', { cookie: newSession, body: { name: 'cli' }, headers: CSRF })).body.secret as string;

  const secrets = [adminPassword, hub.token, patPassword, reset.body.password as string, wrong, token, session.split('=')[1]!, newSession.split('=')[1]!];
  const answers = await Promise.all(['/api/v1/users', '/api/v1/tokens', '/api/v1/audit?limit=1000', '/api/v1/session'].map((p) => hub.api('GET', p)));
  for (const answer of answers) {
    const text = JSON.stringify(answer.body);
    for (const secret of secrets) assert.ok(!text.includes(secret), `a secret in ${text.slice(0, 80)}…`);
    assert.ok(!/scrypt\$/.test(text), 'no password hash');
  }
  const audit = answers[2]!.body.entries as { action: string }[];
  assert.ok(audit.some((e) => e.action === 'session.login_failed'));
  assert.ok(lines.length > 5, 'the log was captured');
  const log = lines.join('');
  assert.match(log, /login failed/);
  for (const secret of secrets) assert.ok(!log.includes(secret), 'a secret in the log');
});

test('bootstrap: an admin-token file from an older hub becomes an API token once; a revoked one stays revoked across restarts', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-hub-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const legacy = 'cairn_legacy-token-from-an-older-hub-0123456789';
  writeFileSync(join(dataDir, 'admin-token'), `${legacy}\n`, { mode: 0o600 });
  const first = await startTestHub(t, { keepDataDir: dataDir });
  assert.equal(first.token, legacy);
  assert.deepEqual((await first.api('GET', '/api/v1/session')).body, { username: 'admin', role: 'admin', via: 'token', tokenId: (await first.api('GET', '/api/v1/tokens')).body.tokens[0].id, scopes: null });
  const password = readFileSync(first.adminPasswordFile, 'utf8').trim();
  const id = (await first.api('GET', '/api/v1/tokens')).body.tokens[0].id;
  assert.equal((await first.api('DELETE', `/api/v1/tokens/${id}`)).status, 200);
  await first.close();

  const second = await startTestHub(t, { keepDataDir: dataDir });
  assert.equal((await second.api('GET', '/api/v1/devices')).status, 401, 'revoked stays revoked');
  assert.equal(readFileSync(second.adminPasswordFile, 'utf8').trim(), password, 'the password is not regenerated');
  const cookie = await second.login('admin', password);
  const users = (await second.request('GET', '/api/v1/users', { cookie })).body.users;
  assert.deepEqual(users.map((u: { username: string }) => u.username), ['admin']);
});
