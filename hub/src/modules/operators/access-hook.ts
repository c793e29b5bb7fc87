/**
 * The one HTTP access check, run on every request before its handler (registered at the root
 * by buildHub, so it covers every module).
 *
 * It decides on the matched route pattern (`request.routeOptions.url`), never on the raw URL:
 * `/%61pi/v1/devices` routes to `/api/v1/devices` and meets the same rule. A request that
 * matches no route gets the 404 answer and reaches no handler, so there is nothing to protect.
 *
 * CSRF rule: a request that is not GET/HEAD/OPTIONS and is authenticated by the session cookie,
 * and the login itself, must carry the `x-cairn-csrf` header. Other public routes (a device's
 * enrollment) carry no ambient credential a forged request could borrow.
 * A cross-site form cannot set a header, and a cross-site `fetch` with one needs a CORS
 * preflight that the hub never grants; SameSite=Strict on the cookie is the second line.
 */
import type { FastifyRequest, onRequestAsyncHookHandler } from 'fastify';
import type { HubMetrics } from '../../infra/metrics.js';
import { Errors } from '../../infra/errors.js';
import type { AuditActor } from '../audit/audit-log.js';
import { accessRule, checkAccess, type Principal } from './access.js';
import { CSRF_HEADER } from '../../infra/auth.js';
import { actorOf, type OperatorsService } from './operators.service.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is asking; null on public routes. */
    principal: Principal | null;
    /** Who the audit log names for this request. */
    actor: AuditActor;
  }
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function accessHook(operators: OperatorsService, metrics: HubMetrics): onRequestAsyncHookHandler {
  return async (request: FastifyRequest) => {
    const route = request.routeOptions.url;
    request.actor = { actor: 'anonymous', credential: null, sourceIp: request.ip };
    if (route === undefined) return;
    const what = `${request.method} ${route}`;
    const rule = accessRule(request.method, route);
    const principal = rule && rule.role !== 'public' ? operators.authenticate(request.headers.authorization, request.headers.cookie) : null;
    const denied = checkAccess(principal, rule, what);
    if (denied) {
      metrics.accessDenied.inc({ code: denied.code });
      if (denied.code === 'CAIRN_ACCESS_UNDEFINED') request.log.error({ route: what }, 'route missing from the access table: denied');
      throw denied;
    }
    const viaBrowser = principal?.via.kind === 'session' || what === 'POST /api/v1/session';
    if (viaBrowser && !SAFE_METHODS.has(request.method) && !request.headers[CSRF_HEADER]) {
      metrics.accessDenied.inc({ code: 'CAIRN_CSRF' });
      throw Errors.csrf(CSRF_HEADER);
    }
    request.principal = principal;
    if (principal) request.actor = actorOf(principal, request.ip);
  };
}
