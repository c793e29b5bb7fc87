/**
 * Operators module routes: console login sessions, users (admin), API tokens (self-service,
 * capped at the caller's role). Who may call each route is decided by the access table
 * (access.ts) before any handler runs; the handlers only apply the finer rules (own tokens,
 * the last admin). Response schemas list every field that may leave the hub: hashes never do,
 * and a secret appears exactly once, in the answer that created it.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ModuleOptions } from '../../infra/context.js';
import { errorResponses, iso, IsoTime } from '../../infra/api-schemas.js';
import { ROLES, SCOPES, type Principal } from './access.js';
import type { ApiToken, User } from './operators.repository.js';

const RoleSchema = Type.Enum(ROLES);
export const Username = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$', description: 'lower-case letters, digits, ".", "_", "-"; up to 64' });

const UserView = Type.Object({ username: Type.String(), role: RoleSchema, disabled: Type.Boolean(), createdAt: IsoTime, createdBy: Type.String() });
const TokenView = Type.Object({
  id: Type.String(),
  name: Type.String(),
  owner: Type.String(),
  role: RoleSchema,
  scopes: Type.Union([Type.Array(Type.String()), Type.Null()]),
  createdAt: IsoTime,
  expiresAt: IsoTime,
  lastUsedAt: IsoTime,
  revokedAt: IsoTime,
});
const Whoami = Type.Object({
  username: Type.String(),
  role: RoleSchema,
  via: Type.Union([Type.Literal('session'), Type.Literal('token')]),
  tokenId: Type.Optional(Type.String()),
  scopes: Type.Union([Type.Array(Type.String()), Type.Null()]),
});

const userView = (u: User) => ({ username: u.username, role: u.role, disabled: u.disabled, createdAt: iso(u.createdAt), createdBy: u.createdBy });
const tokenView = (t: ApiToken) => ({
  id: t.id,
  name: t.name,
  owner: t.username,
  role: t.role,
  scopes: t.scopes,
  createdAt: iso(t.createdAt),
  expiresAt: iso(t.expiresAt),
  lastUsedAt: iso(t.lastUsedAt),
  revokedAt: iso(t.revokedAt),
});

/** Every route here except login is behind the access check, which sets the principal. */
const principalOf = (request: FastifyRequest): Principal => {
  if (!request.principal) throw new Error(`${request.method} ${request.routeOptions.url} ran without a principal`);
  return request.principal;
};

const operatorsPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { operators } = ctx;

  app.post(
    '/api/v1/session',
    {
      schema: {
        summary: 'Console login: sets an HttpOnly session cookie. Needs the x-cairn-csrf header. Throttled per username and source address (429 + retry-after).',
        security: [],
        body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 64 }), password: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false }),
        response: { 200: Type.Object({ username: Type.String(), role: RoleSchema, expiresAt: IsoTime }), ...errorResponses, 429: errorResponses[400] },
      },
    },
    async (request, reply) => {
      const { user, sessionId, expiresAt } = await operators.login(request.body.username, request.body.password, request.ip);
      reply.header('set-cookie', operators.sessionCookie(sessionId, expiresAt));
      return { username: user.username, role: user.role, expiresAt: iso(expiresAt) };
    },
  );

  app.get('/api/v1/session', { schema: { summary: 'Who am I: the signed-in user or the token owner, and the effective role', response: { 200: Whoami, ...errorResponses } } }, async (request) => {
    const p = principalOf(request);
    return { username: p.username, role: p.role, via: p.via.kind, ...(p.via.kind === 'token' ? { tokenId: p.via.id } : {}), scopes: p.scopes ? [...p.scopes] : null };
  });

  app.delete('/api/v1/session', { schema: { summary: 'Logout: ends the console session and clears its cookie' } }, async (request, reply) => {
    operators.logout(principalOf(request), request.actor, request.headers.cookie);
    reply.header('set-cookie', operators.clearedCookie());
    return reply.code(204).send();
  });

  app.get('/api/v1/users', { schema: { response: { 200: Type.Object({ users: Type.Array(UserView) }), ...errorResponses } } }, async () => ({
    users: operators.repo.users().map(userView),
  }));

  app.post(
    '/api/v1/users',
    {
      schema: {
        summary: 'Create a user; without a password the hub generates one and returns it, once',
        body: Type.Object({ username: Username, role: RoleSchema, password: Type.Optional(Type.String({ minLength: 12, maxLength: 1024 })) }, { additionalProperties: false }),
        response: { 201: Type.Object({ user: UserView, password: Type.Optional(Type.String()) }), ...errorResponses, 409: errorResponses[400] },
      },
    },
    async (request, reply) => {
      const created = await operators.createUser(request.actor, request.body);
      reply.code(201);
      return { user: userView(created.user), ...(created.password ? { password: created.password } : {}) };
    },
  );

  const UserParams = Type.Object({ username: Username });
  app.patch(
    '/api/v1/users/:username',
    {
      schema: {
        summary: "Change a user's role or disable/enable them (disabling ends their sessions and stops their tokens)",
        params: UserParams,
        body: Type.Object({ role: Type.Optional(RoleSchema), disabled: Type.Optional(Type.Boolean()) }, { additionalProperties: false, minProperties: 1 }),
        response: { 200: UserView, ...errorResponses, 409: errorResponses[400] },
      },
    },
    async (request) => userView(operators.updateUser(request.actor, request.params.username, request.body)),
  );

  app.post(
    '/api/v1/users/:username/password',
    {
      schema: {
        summary: "Replace a user's password with a generated one, returned once; their console sessions end",
        params: UserParams,
        response: { 200: Type.Object({ password: Type.String() }), ...errorResponses },
      },
    },
    async (request) => ({ password: await operators.resetPassword(request.actor, request.params.username) }),
  );

  app.get('/api/v1/tokens', { schema: { summary: 'Your API tokens (all tokens for an admin), revoked ones included', response: { 200: Type.Object({ tokens: Type.Array(TokenView) }), ...errorResponses } } }, async (request) => ({
    tokens: operators.visibleTokens(principalOf(request)).map(tokenView),
  }));

  app.post(
    '/api/v1/tokens',
    {
      schema: {
        summary: 'Create an API token for yourself; its role cannot exceed yours. The token is in this answer only.',
        body: Type.Object(
          {
            name: Type.String({ minLength: 1, maxLength: 64 }),
            role: Type.Optional(RoleSchema),
            scopes: Type.Optional(Type.Array(Type.Enum(SCOPES), { minItems: 1, maxItems: SCOPES.length })),
            ttlSeconds: Type.Optional(Type.Integer({ minimum: 60, maximum: 400 * 86_400, description: 'lifetime; default 90 days' })),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ token: TokenView, secret: Type.String() }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const created = operators.createToken(principalOf(request), request.actor, request.body);
      reply.code(201);
      return { token: tokenView(created.token), secret: created.secret };
    },
  );

  app.delete(
    '/api/v1/tokens/:id',
    { schema: { summary: 'Revoke a token (yours; any token for an admin)', params: Type.Object({ id: Type.String({ maxLength: 64 }) }), response: { 200: TokenView, ...errorResponses } } },
    async (request) => tokenView(operators.revokeToken(principalOf(request), request.actor, request.params.id)),
  );
};

export default operatorsPlugin;
