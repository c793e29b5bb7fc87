/**
 * Enrollment module routes.
 *
 *   POST   /api/v1/enroll                     public; a device's signed claim (+ token) → 201 active with
 *                                             its MQTT credentials, or 202 pending
 *   POST   /api/v1/enrollment-tokens          create a token (shown once)
 *   GET    /api/v1/enrollment-tokens          tokens, never their secrets
 *   DELETE /api/v1/enrollment-tokens/:id      revoke a token
 *   GET    /api/v1/enrollments?status=        device identities and their status
 *   POST   /api/v1/devices/:id/accept         pending → accepted
 *   POST   /api/v1/devices/:id/revoke         refuse the device, close its session
 *   DELETE /api/v1/enrollments/:id            forget a pending or revoked id
 *
 * Refused claims are rate-limited per source address: past 10 refusals (one more allowed every
 * 2 s) the address gets 429 before any work is done (scrypt is the expensive part).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { DeviceId, EnrollRequest, EnrollResponse, Labels } from '@cairn/shared';
import type { ModuleOptions } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { ErrorResponse, errorResponses, iso, IsoTime } from '../../infra/api-schemas.js';
import { RateLimiter } from '../../infra/rate-limit.js';
import type { DeviceCredential, EnrollmentToken } from './enrollment.repository.js';

const HOUR_MS = 3600_000;

const EnrollmentView = Type.Object({
  deviceId: Type.String(),
  status: Type.Union([Type.Literal('pending'), Type.Literal('accepted'), Type.Literal('active'), Type.Literal('revoked')]),
  publicKey: Type.String(),
  method: Type.Union([Type.Literal('token'), Type.Literal('accepted'), Type.Null()]),
  tokenId: Type.Union([Type.String(), Type.Null()]),
  requestedAt: IsoTime,
  requestedFrom: Type.Union([Type.String(), Type.Null()]),
  enrolledAt: IsoTime,
  revokedAt: IsoTime,
});
const enrollmentView = (c: DeviceCredential) => ({
  deviceId: c.deviceId,
  status: c.status,
  publicKey: c.publicKey,
  method: c.method,
  tokenId: c.tokenId,
  requestedAt: iso(c.requestedAt),
  requestedFrom: c.requestedFrom,
  enrolledAt: iso(c.enrolledAt),
  revokedAt: iso(c.revokedAt),
});

const TokenView = Type.Object({
  id: Type.String(),
  labels: Labels,
  maxUses: Type.Union([Type.Integer(), Type.Null()]),
  uses: Type.Integer(),
  expiresAt: IsoTime,
  createdAt: IsoTime,
  createdBy: Type.String(),
  revokedAt: IsoTime,
});
const tokenView = (t: EnrollmentToken) => ({
  id: t.id,
  labels: t.labels,
  maxUses: t.maxUses,
  uses: t.uses,
  expiresAt: iso(t.expiresAt),
  createdAt: iso(t.createdAt),
  createdBy: t.createdBy,
  revokedAt: iso(t.revokedAt),
});

const DeviceParams = Type.Object({ id: DeviceId });

const enrollmentPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { enrollment } = ctx;
  const refusals = new RateLimiter({ ratePerSec: 0.5, burst: 10, clock: ctx.clock });

  app.post(
    '/api/v1/enroll',
    {
      schema: { body: EnrollRequest, response: { 201: EnrollResponse, 202: EnrollResponse, 409: ErrorResponse, 429: ErrorResponse, ...errorResponses } },
    },
    async (request, reply) => {
      if (!refusals.allowed(request.ip)) throw Errors.rateLimited('refused enrollment requests from this address');
      try {
        const response = await enrollment.enroll(request.body, request.ip);
        // The device is the actor; never the password or the token.
        ctx.audit.append(
          { actor: `device:${response.deviceId}`, credential: request.body.token ? `enrollment-token:${request.body.token.slice(4, 20)}` : null, sourceIp: request.ip },
          { action: response.status === 'active' ? 'device.enrolled' : 'device.enrollment_requested', target: `device:${response.deviceId}`, after: { status: response.status, publicKey: request.body.claim.publicKey } },
        );
        return await reply.code(response.status === 'active' ? 201 : 202).send(response);
      } catch (err) {
        refusals.take(request.ip);
        throw err;
      }
    },
  );

  app.post(
    '/api/v1/enrollment-tokens',
    {
      schema: {
        body: Type.Object(
          {
            labels: Type.Optional(Labels),
            maxUses: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
            expiresInHours: Type.Number({ exclusiveMinimum: 0, maximum: 24 * 365, default: 24 }),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Object({ id: Type.String(), token: Type.String(), labels: Labels, maxUses: Type.Union([Type.Integer(), Type.Null()]), expiresAt: IsoTime }), ...errorResponses },
      },
    },
    async (request, reply) => {
      const { labels = {}, maxUses, expiresInHours } = request.body;
      const created = await enrollment.createToken({ labels, maxUses: maxUses ?? null, ttlMs: expiresInHours * HOUR_MS, createdBy: request.actor.actor });
      ctx.audit.append(request.actor, { action: 'enrollment_token.created', target: `enrollment-token:${created.id}`, after: { labels, maxUses: created.maxUses, expiresAt: iso(created.expiresAt) } });
      ctx.logger.info({ tokenId: created.id, maxUses: created.maxUses, expiresAt: iso(created.expiresAt) }, 'enrollment token created');
      return reply.code(201).send({ ...created, expiresAt: iso(created.expiresAt) });
    },
  );

  app.get('/api/v1/enrollment-tokens', { schema: { response: { 200: Type.Object({ tokens: Type.Array(TokenView) }), ...errorResponses } } }, async () => ({
    tokens: ctx.enrollment.tokens().map(tokenView),
  }));

  app.delete(
    '/api/v1/enrollment-tokens/:id',
    { schema: { params: Type.Object({ id: Type.String({ pattern: '^[0-9a-f]{16}$' }) }), response: { 204: Type.Null(), ...errorResponses } } },
    async (request, reply) => {
      enrollment.revokeToken(request.params.id);
      ctx.audit.append(request.actor, { action: 'enrollment_token.revoked', target: `enrollment-token:${request.params.id}` });
      return reply.code(204).send(null);
    },
  );

  app.get(
    '/api/v1/enrollments',
    {
      schema: {
        querystring: Type.Object({ status: Type.Optional(Type.Union([Type.Literal('pending'), Type.Literal('accepted'), Type.Literal('active'), Type.Literal('revoked')])) }),
        response: { 200: Type.Object({ enrollments: Type.Array(EnrollmentView) }), ...errorResponses },
      },
    },
    async (request) => ({ enrollments: enrollment.list(request.query.status).map(enrollmentView) }),
  );

  for (const verb of ['accept', 'revoke'] as const) {
    app.post(`/api/v1/devices/:id/${verb}`, { schema: { params: DeviceParams, response: { 200: EnrollmentView, 409: ErrorResponse, ...errorResponses } } }, async (request) => {
      const id = (request.params as { id: string }).id;
      const before = enrollment.list().find((c) => c.deviceId === id)?.status ?? null;
      const after = verb === 'accept' ? enrollment.accept(id) : enrollment.revoke(id);
      ctx.audit.append(request.actor, { action: `device.${verb === 'accept' ? 'accepted' : 'revoked'}`, target: `device:${id}`, before: { status: before }, after: { status: after.status } });
      return enrollmentView(after);
    });
  }

  app.delete('/api/v1/enrollments/:id', { schema: { params: DeviceParams, response: { 204: Type.Null(), 409: ErrorResponse, ...errorResponses } } }, async (request, reply) => {
    enrollment.forget(request.params.id);
    ctx.audit.append(request.actor, { action: 'device.forgotten', target: `device:${request.params.id}` });
    return reply.code(204).send(null);
  });
};

export default enrollmentPlugin;
