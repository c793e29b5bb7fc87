/**
 * The one access table: every HTTP route (method + matched route pattern) and every MQTT command
 * the hub sends, with the least role that may use it and the scope an API token needs for it.
 * `checkAccess` is the only place that compares roles; the HTTP hook (access-hook.ts) calls it
 * before every route, and the command sender calls it with `CMD <command>` before publishing on
 * a device's `cmd` topic.
 *
 * Deny by default: a route that is not in the table answers 403 `CAIRN_ACCESS_UNDEFINED` for
 * everyone, and a test enumerates every registered route against this table.
 *
 * Roles are ordered viewer < operator < admin. `public` needs no credentials; `authenticated`
 * needs any valid one (whoami, logout).
 */
import { HubError } from '../../infra/errors.js';

export const ROLES = ['viewer', 'operator', 'admin'] as const;
export type Role = (typeof ROLES)[number];

export const roleRank = (role: Role): number => ROLES.indexOf(role);
export const atLeast = (role: Role, required: Role): boolean => roleRank(role) >= roleRank(required);
export const lowerRole = (a: Role, b: Role): Role => (roleRank(a) <= roleRank(b) ? a : b);

export type Requirement = 'public' | 'authenticated' | Role;

export interface AccessRule {
  role: Requirement;
  /** What a scoped API token must list to use this; absent for public and `authenticated` rules. */
  scope?: string;
}

const rule = (role: Requirement, scope?: string): AccessRule => (scope ? { role, scope } : { role });

/** Keys are `METHOD /route/pattern` exactly as registered (HEAD is checked as GET), or `CMD <command>`. */
export const ACCESS_TABLE: Readonly<Record<string, AccessRule>> = {
  // Needed before anyone can sign in: liveness, the agent's trust bootstrap, the console's files, login.
  'GET /healthz': rule('public'),
  'GET /api/v1/trust': rule('public'),
  'GET /': rule('public'),
  'GET /*': rule('public'),
  'POST /api/v1/session': rule('public'),
  // A device's own enrollment: authenticated by its key's signature and a token (or an operator's acceptance).
  'POST /api/v1/enroll': rule('public'),
  'GET /api/v1/session': rule('authenticated'),
  'DELETE /api/v1/session': rule('authenticated'),

  'GET /docs/json': rule('viewer', 'hub:read'),
  'GET /metrics': rule('viewer', 'hub:read'),
  'GET /api/v1/keys': rule('viewer', 'hub:read'),
  // The trust hierarchy of the whole fleet: admins only. With the root offline a change is a
  // draft until a root holder signs it (the root seed never reaches the hub).
  'POST /api/v1/keys/changes': rule('admin', 'keys:write'),
  'PUT /api/v1/keys/keyring': rule('admin', 'keys:write'),

  'GET /api/v1/devices': rule('viewer', 'devices:read'),
  'GET /api/v1/devices/:id': rule('viewer', 'devices:read'),
  'GET /api/v1/devices/:id/events': rule('viewer', 'devices:read'),
  'GET /api/v1/devices/:id/telemetry': rule('viewer', 'devices:read'),
  'GET /api/v1/telemetry/series': rule('viewer', 'devices:read'),
  'GET /api/v1/fleet/summary': rule('viewer', 'devices:read'),
  'PUT /api/v1/devices/:id/labels': rule('operator', 'devices:write'),

  // Device identities: letting devices in (tokens, acceptance) and out (revocation) is fleet management.
  'GET /api/v1/enrollments': rule('viewer', 'devices:read'),
  'GET /api/v1/enrollment-tokens': rule('viewer', 'devices:read'),
  'POST /api/v1/enrollment-tokens': rule('operator', 'devices:enroll'),
  'DELETE /api/v1/enrollment-tokens/:id': rule('operator', 'devices:enroll'),
  'POST /api/v1/devices/:id/accept': rule('operator', 'devices:enroll'),
  'POST /api/v1/devices/:id/revoke': rule('operator', 'devices:enroll'),
  'DELETE /api/v1/enrollments/:id': rule('operator', 'devices:enroll'),

  'GET /api/v1/models': rule('viewer', 'models:read'),
  'GET /api/v1/models/:name/:version': rule('viewer', 'models:read'),
  // The weights themselves are the customer's work: operators and up.
  'GET /api/v1/models/:name/:version/blob': rule('operator', 'models:pull'),
  'POST /api/v1/models': rule('operator', 'models:write'),
  'POST /api/v1/uploads': rule('operator', 'models:write'),
  'POST /api/v1/models/publish': rule('operator', 'models:write'),
  'POST /api/v1/models/:name/:version/approve': rule('operator', 'models:approve'),

  'GET /api/v1/deployments': rule('viewer', 'deployments:read'),
  'GET /api/v1/deployments/:id': rule('viewer', 'deployments:read'),
  'POST /api/v1/deployments': rule('operator', 'deployments:write'),

  'GET /api/v1/rollouts': rule('viewer', 'rollouts:read'),
  'GET /api/v1/rollouts/:id': rule('viewer', 'rollouts:read'),
  'GET /api/v1/rollouts/:id/devices': rule('viewer', 'rollouts:read'),
  'POST /api/v1/rollouts': rule('operator', 'rollouts:write'),
  'POST /api/v1/rollouts/:id/start': rule('operator', 'rollouts:write'),
  'POST /api/v1/rollouts/:id/pause': rule('operator', 'rollouts:write'),
  'POST /api/v1/rollouts/:id/resume': rule('operator', 'rollouts:write'),
  'POST /api/v1/rollouts/:id/abort': rule('operator', 'rollouts:write'),
  'POST /api/v1/rollouts/:id/rollback': rule('operator', 'rollouts:write'),
  // Approving the rollout's model is the four-eyes approval of the version itself.
  'POST /api/v1/rollouts/:id/approve': rule('operator', 'models:approve'),

  // Live events of devices, rollouts, alerts and work orders: what the console's pages show.
  'GET /api/v1/stream': rule('viewer', 'stream:read'),
  'GET /api/v1/alerts': rule('viewer', 'alerts:read'),
  'GET /api/v1/alerts/:id': rule('viewer', 'alerts:read'),
  'POST /api/v1/alerts/:id/acknowledge': rule('operator', 'alerts:write'),
  'POST /api/v1/alerts/:id/resolve': rule('operator', 'alerts:write'),
  'GET /api/v1/work-orders': rule('viewer', 'alerts:read'),
  'GET /api/v1/work-orders/:id': rule('viewer', 'alerts:read'),
  'POST /api/v1/work-orders/:id/acknowledge': rule('operator', 'alerts:write'),
  'POST /api/v1/work-orders/:id/done': rule('operator', 'alerts:write'),
  // Where alerts and work orders leave the hub (endpoints are configuration, secrets never shown): admins.
  'GET /api/v1/webhooks': rule('admin', 'webhooks'),

  'GET /api/v1/audit': rule('operator', 'audit:read'),
  'GET /api/v1/audit/head': rule('operator', 'audit:read'),

  // Each operator manages their own tokens (never above their own role); admins see and revoke all.
  'GET /api/v1/tokens': rule('viewer', 'tokens'),
  'POST /api/v1/tokens': rule('viewer', 'tokens'),
  'DELETE /api/v1/tokens/:id': rule('viewer', 'tokens'),

  'GET /api/v1/users': rule('admin', 'users'),
  'POST /api/v1/users': rule('admin', 'users'),
  'PATCH /api/v1/users/:username': rule('admin', 'users'),
  'POST /api/v1/users/:username/password': rule('admin', 'users'),

  // Hub → device commands (DESIGN §2, `cmd` topic), checked before publishing.
  'CMD rollback': rule('operator', 'devices:command'),
  'CMD capture': rule('operator', 'devices:command'),
  'CMD reload': rule('operator', 'devices:command'),
};

/** Every scope a token can be given: exactly those the table uses. */
export const SCOPES: readonly string[] = [...new Set(Object.values(ACCESS_TABLE).flatMap((r) => (r.scope ? [r.scope] : [])))].sort();

export function accessKey(method: string, routePattern: string): string {
  return `${method === 'HEAD' ? 'GET' : method} ${routePattern}`;
}

export function accessRule(method: string, routePattern: string): AccessRule | undefined {
  return Object.hasOwn(ACCESS_TABLE, accessKey(method, routePattern)) ? ACCESS_TABLE[accessKey(method, routePattern)] : undefined;
}

/** Who is asking: the effective role (a token's role capped by its owner's current role) and, for a scoped token, its scopes. */
export interface Principal {
  userId: number;
  username: string;
  role: Role;
  /** null: every scope the role allows. */
  scopes: readonly string[] | null;
  via: { kind: 'session'; id: string } | { kind: 'token'; id: string };
}

/**
 * The one access decision. Returns the error to answer with, or null when the principal may
 * proceed. `what` names the action in messages (`POST /api/v1/deployments`, `CMD rollback`).
 */
export function checkAccess(principal: Principal | null, rule: AccessRule | undefined, what: string): HubError | null {
  if (!rule) return new HubError('CAIRN_ACCESS_UNDEFINED', 403, `${what} is not in the hub's access table; it is denied to everyone`);
  if (rule.role === 'public') return null;
  if (!principal) return new HubError('CAIRN_UNAUTHORIZED', 401, 'sign in, or send a valid API token (Authorization: Bearer <token>)');
  if (rule.role === 'authenticated') return null;
  if (!atLeast(principal.role, rule.role)) return new HubError('CAIRN_FORBIDDEN', 403, `${what} needs the ${rule.role} role; you have ${principal.role}`);
  if (principal.scopes && rule.scope && !principal.scopes.includes(rule.scope)) {
    return new HubError('CAIRN_TOKEN_SCOPE', 403, `${what} needs an API token with the ${rule.scope} scope`);
  }
  return null;
}
