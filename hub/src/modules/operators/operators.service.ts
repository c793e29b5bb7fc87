/**
 * Operators: who may do what, and how they prove it.
 *
 * - Users have a role (viewer < operator < admin) and an scrypt-hashed password; they are never
 *   deleted, only disabled (their name stays meaningful in the audit log).
 * - API tokens (`Authorization: Bearer cairn_…`) belong to a user, carry a role no higher than
 *   their creator's and optional scopes, and expire. Their effective role is capped by the
 *   owner's current role, so demoting or disabling a user demotes or disables their tokens.
 * - Console sessions are random ids in an HttpOnly, SameSite=Strict cookie, stored as digests,
 *   with an idle and an absolute expiry.
 *
 * Every change is written to the audit log in the same transaction.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { tlsEnabled, type HubConfig } from '../../infra/config.js';
import type { HubMetrics } from '../../infra/metrics.js';
import { ADMIN_PASSWORD_FILE, ADMIN_TOKEN_FILE, SESSION_COOKIE, bearerToken, newApiToken, newPassword, newSessionId, secretDigest, writeSecretFile } from '../../infra/auth.js';
import { Errors } from '../../infra/errors.js';
import { SYSTEM_ACTOR, type AuditActor, type AuditLog } from '../audit/audit-log.js';
import { atLeast, lowerRole, type Principal, type Role } from './access.js';
import { LoginLimiter } from './login-limiter.js';
import { hashPassword, unknownUserHash, verifyPassword } from './passwords.js';
import type { ApiToken, OperatorsRepository, User } from './operators.repository.js';

export const DEFAULT_TOKEN_TTL_SECONDS = 90 * 86_400;

export interface OperatorsDeps {
  repo: OperatorsRepository;
  audit: AuditLog;
  config: HubConfig;
  clock: () => number;
  logger: Logger;
  metrics: HubMetrics;
}

/** What a user or token looks like in the audit log: never a hash, never a secret. */
export const userRecord = (u: User) => ({ username: u.username, role: u.role, disabled: u.disabled });
export const tokenRecord = (t: ApiToken) => ({ id: t.id, name: t.name, owner: t.username, role: t.role, scopes: t.scopes, expiresAt: t.expiresAt, revokedAt: t.revokedAt });

export function actorOf(principal: Principal, sourceIp: string | null): AuditActor {
  return { actor: `user:${principal.username}`, credential: `${principal.via.kind}:${principal.via.id}`, sourceIp };
}

export class OperatorsService {
  readonly limiter: LoginLimiter;

  constructor(private readonly deps: OperatorsDeps) {
    const { auth } = deps.config;
    this.limiter = new LoginLimiter({
      maxFailures: auth.loginMaxFailures,
      lockoutMs: auth.loginLockoutSeconds * 1000,
      maxLockoutMs: auth.loginMaxLockoutSeconds * 1000,
      clock: deps.clock,
    });
  }

  get repo(): OperatorsRepository {
    return this.deps.repo;
  }

  private get idleMs(): number {
    return this.deps.config.auth.sessionIdleMinutes * 60_000;
  }

  /**
   * First start: an `admin` user with a random password in `<data>/admin-password` and an admin
   * API token in `<data>/admin-token` (both 0600; the paths are logged, never the secrets).
   * A token file from an older hub, or one the operator wrote, becomes an API token of the
   * first admin the first time it is seen; a revoked one stays revoked.
   */
  async bootstrap(dataDir: string): Promise<{ adminTokenFile: string; adminPasswordFile: string }> {
    const { repo, audit, logger, clock } = this.deps;
    const adminTokenFile = join(dataDir, ADMIN_TOKEN_FILE);
    const adminPasswordFile = join(dataDir, ADMIN_PASSWORD_FILE);
    if (repo.countUsers() === 0) {
      const password = newPassword();
      const passwordHash = await hashPassword(password);
      writeSecretFile(adminPasswordFile, password);
      repo.transaction(() => {
        const user = repo.insertUser({ username: 'admin', role: 'admin', passwordHash, createdAt: clock(), createdBy: 'system' });
        audit.append(SYSTEM_ACTOR, { action: 'user.create', target: 'user:admin', after: userRecord(user) });
      });
      if (!existsSync(adminTokenFile)) writeSecretFile(adminTokenFile, newApiToken());
      logger.info({ adminPasswordFile, adminTokenFile }, 'created the admin user; its password and an admin API token are in these files');
    }
    if (existsSync(adminTokenFile)) {
      const secret = readFileSync(adminTokenFile, 'utf8').trim();
      const owner = repo.users().find((u) => u.role === 'admin' && !u.disabled);
      if (secret.length >= 16 && secret.length < 512 && owner && !repo.tokenByDigest(secretDigest(secret))) {
        repo.transaction(() => {
          const token = repo.insertToken({ id: newTokenId(), userId: owner.id, name: ADMIN_TOKEN_FILE, digest: secretDigest(secret), role: 'admin', scopes: null, createdAt: clock(), expiresAt: null });
          audit.append(SYSTEM_ACTOR, { action: 'token.create', target: `token:${token.id}`, after: tokenRecord(token) });
        });
        logger.info({ adminTokenFile, owner: owner.username }, 'registered the admin token file as an API token');
      }
    }
    return { adminTokenFile, adminPasswordFile };
  }

  /**
   * The principal behind a request's credentials, or null. A Bearer header wins over a cookie.
   * `touch: false` checks without counting as use (a long-lived stream re-checking its
   * credential must not keep an idle session alive).
   */
  authenticate(authorization: string | undefined, cookieHeader: string | undefined, { touch = true }: { touch?: boolean } = {}): Principal | null {
    const { repo, clock } = this.deps;
    const now = clock();
    if (authorization !== undefined) {
      const secret = bearerToken(authorization);
      if (!secret || secret.length >= 512) return null;
      const token = repo.tokenByDigest(secretDigest(secret));
      if (!token || token.revokedAt !== null || (token.expiresAt !== null && token.expiresAt <= now)) return null;
      const owner = repo.userById(token.userId);
      if (!owner || owner.disabled) return null;
      if (touch) repo.touchToken(token, now);
      return { userId: owner.id, username: owner.username, role: lowerRole(token.role, owner.role), scopes: token.scopes, via: { kind: 'token', id: token.id } };
    }
    const sessionId = readCookie(cookieHeader, SESSION_COOKIE);
    if (!sessionId || sessionId.length > 128) return null;
    const session = repo.session(secretDigest(sessionId));
    if (!session) return null;
    if (session.expiresAt <= now || session.lastSeenAt + this.idleMs <= now) {
      repo.deleteSession(session.digest);
      return null;
    }
    const user = repo.userById(session.userId);
    if (!user || user.disabled) return null;
    if (touch) repo.touchSession(session, now);
    return { userId: user.id, username: user.username, role: user.role, scopes: null, via: { kind: 'session', id: sessionLabel(session.digest) } };
  }

  /**
   * Checks a password under the login throttle. Unknown users, disabled users and wrong passwords
   * get the same answer in about the same time; the log and the audit say which it was.
   */
  async login(username: string, password: string, sourceIp: string): Promise<{ user: User; sessionId: string; expiresAt: number }> {
    const { repo, audit, clock, logger, metrics, config } = this.deps;
    const keys = [`user:${username}`, `ip:${sourceIp}`];
    const waitMs = this.limiter.retryAfterMs(keys);
    if (waitMs > 0) {
      metrics.loginFailures.inc({ reason: 'locked' });
      logger.warn({ username, sourceIp }, 'login refused: locked after repeated failures');
      throw Errors.loginLocked(Math.ceil(waitMs / 1000));
    }
    const stored = repo.passwordHashOf(username);
    const matches = await verifyPassword(password, stored ?? (await unknownUserHash()));
    const user = stored === null ? null : repo.user(username);
    const reason = !user ? 'unknown_user' : !matches ? 'bad_password' : user.disabled ? 'disabled' : null;
    const anonymous: AuditActor = { actor: 'anonymous', credential: null, sourceIp };
    if (reason !== null) {
      this.limiter.failed(keys);
      metrics.loginFailures.inc({ reason: 'bad_credentials' });
      logger.warn({ username, sourceIp, reason }, 'login failed');
      audit.append(anonymous, { action: 'session.login_failed', target: `user:${username}`, after: { reason } });
      throw Errors.badCredentials();
    }
    this.limiter.succeeded(keys[0]!);
    const now = clock();
    const sessionId = newSessionId();
    const expiresAt = now + config.auth.sessionAbsoluteHours * 3_600_000;
    const digest = secretDigest(sessionId);
    repo.transaction(() => {
      repo.pruneSessions(now, this.idleMs);
      repo.insertSession({ digest, userId: user!.id, createdAt: now, lastSeenAt: now, expiresAt, sourceIp });
      audit.append({ actor: `user:${username}`, credential: `session:${sessionLabel(digest)}`, sourceIp }, { action: 'session.login', target: `user:${username}`, after: { expiresAt } });
    });
    logger.info({ username, sourceIp }, 'login');
    return { user: user!, sessionId, expiresAt };
  }

  logout(principal: Principal, actor: AuditActor, cookieHeader: string | undefined): void {
    const sessionId = readCookie(cookieHeader, SESSION_COOKIE);
    if (principal.via.kind !== 'session' || !sessionId) return;
    const { repo, audit } = this.deps;
    repo.transaction(() => {
      repo.deleteSession(secretDigest(sessionId));
      audit.append(actor, { action: 'session.logout', target: `user:${principal.username}` });
    });
  }

  async createUser(actor: AuditActor, input: { username: string; role: Role; password?: string }): Promise<{ user: User; password?: string }> {
    const { repo, audit, clock } = this.deps;
    if (repo.user(input.username)) throw Errors.userExists(input.username);
    const password = input.password ?? newPassword();
    const passwordHash = await hashPassword(password);
    const user = repo.transaction(() => {
      if (repo.user(input.username)) throw Errors.userExists(input.username);
      const created = repo.insertUser({ username: input.username, role: input.role, passwordHash, createdAt: clock(), createdBy: actor.actor });
      audit.append(actor, { action: 'user.create', target: `user:${created.username}`, after: userRecord(created) });
      return created;
    });
    return input.password === undefined ? { user, password } : { user };
  }

  updateUser(actor: AuditActor, username: string, changes: { role?: Role; disabled?: boolean }): User {
    const { repo, audit } = this.deps;
    return repo.transaction(() => {
      const before = repo.user(username);
      if (!before) throw Errors.userNotFound(username);
      const losesAdmin = before.role === 'admin' && !before.disabled && ((changes.role !== undefined && changes.role !== 'admin') || changes.disabled === true);
      if (losesAdmin && repo.countActiveAdmins() <= 1) throw Errors.lastAdmin();
      const after = repo.updateUser(before.id, changes);
      if (after.disabled) repo.deleteSessionsOf(after.id);
      audit.append(actor, { action: 'user.update', target: `user:${username}`, before: userRecord(before), after: userRecord(after) });
      return after;
    });
  }

  /** A new generated password, shown once; the user's console sessions end. */
  async resetPassword(actor: AuditActor, username: string): Promise<string> {
    const { repo, audit } = this.deps;
    const user = repo.user(username);
    if (!user) throw Errors.userNotFound(username);
    const password = newPassword();
    const passwordHash = await hashPassword(password);
    repo.transaction(() => {
      repo.updateUser(user.id, { passwordHash });
      const ended = repo.deleteSessionsOf(user.id);
      audit.append(actor, { action: 'user.password_reset', target: `user:${username}`, after: { sessionsEnded: ended } });
    });
    return password;
  }

  /**
   * A new API token for the principal's own user. Its role defaults to, and may not exceed, the
   * principal's effective role; a scoped principal can only pass on scopes it has.
   */
  createToken(principal: Principal, actor: AuditActor, input: { name: string; role?: Role; scopes?: string[]; ttlSeconds?: number }): { token: ApiToken; secret: string } {
    const { repo, audit, clock } = this.deps;
    const role = input.role ?? principal.role;
    if (!atLeast(principal.role, role)) throw Errors.roleAboveOwn('role', role, principal.role);
    let scopes = input.scopes ? [...new Set(input.scopes)].sort() : null;
    if (principal.scopes) {
      const missing = (scopes ?? []).filter((s) => !principal.scopes!.includes(s));
      if (missing.length > 0) throw Errors.scopeAboveOwn(missing);
      scopes ??= [...principal.scopes];
    }
    const now = clock();
    const secret = newApiToken();
    const token = repo.transaction(() => {
      const created = repo.insertToken({ id: newTokenId(), userId: principal.userId, name: input.name, digest: secretDigest(secret), role, scopes, createdAt: now, expiresAt: now + (input.ttlSeconds ?? DEFAULT_TOKEN_TTL_SECONDS) * 1000 });
      audit.append(actor, { action: 'token.create', target: `token:${created.id}`, after: tokenRecord(created) });
      return created;
    });
    return { token, secret };
  }

  /** Admins see every token; everyone else their own. */
  visibleTokens(principal: Principal): ApiToken[] {
    return this.deps.repo.tokens(principal.role === 'admin' ? undefined : principal.userId);
  }

  revokeToken(principal: Principal, actor: AuditActor, id: string): ApiToken {
    const { repo, audit, clock } = this.deps;
    return repo.transaction(() => {
      const before = repo.token(id);
      // Someone else's token is "not found" to a non-admin: its existence is none of their business.
      if (!before || (principal.role !== 'admin' && before.userId !== principal.userId)) throw Errors.tokenNotFound(id);
      if (before.revokedAt !== null) return before;
      const after = repo.revokeToken(id, clock());
      audit.append(actor, { action: 'token.revoke', target: `token:${id}`, before: tokenRecord(before), after: tokenRecord(after) });
      return after;
    });
  }

  sessionCookie(sessionId: string, expiresAt: number): string {
    const maxAge = Math.max(0, Math.floor((expiresAt - this.deps.clock()) / 1000));
    return `${SESSION_COOKIE}=${sessionId}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${(this.deps.config.auth.cookieSecure ?? tlsEnabled(this.deps.config)) ? '; Secure' : ''}`;
  }

  clearedCookie(): string {
    return this.sessionCookie('', 0);
  }
}

const newTokenId = () => `tok_${randomBytes(9).toString('base64url')}`;

/** How a session appears in whoami answers and the audit log: a prefix of its digest, not its id. */
const sessionLabel = (digest: string) => digest.slice(0, 12);

export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim() || undefined;
  }
  return undefined;
}
