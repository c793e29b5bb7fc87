/**
 * Audit module routes: read the log (operators and admins; the access table says so) and its
 * head, the anchor to keep off the hub for `cairn audit verify --anchor`. Nothing here writes:
 * modules append in the transaction of their own change (audit-log.ts).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ModuleOptions } from '../../infra/context.js';
import { errorResponses, iso, IsoTime } from '../../infra/api-schemas.js';
import { Errors } from '../../infra/errors.js';
import { GENESIS_HASH, type AuditEntry } from './audit-log.js';

const AuditEntryView = Type.Object({
  id: Type.Integer(),
  at: IsoTime,
  actor: Type.String(),
  credential: Type.Union([Type.String(), Type.Null()]),
  sourceIp: Type.Union([Type.String(), Type.Null()]),
  action: Type.String(),
  target: Type.Union([Type.String(), Type.Null()]),
  before: Type.Unknown(),
  after: Type.Unknown(),
  prevHash: Type.String(),
  hash: Type.String(),
});

const view = (e: AuditEntry) => ({ ...e, at: iso(e.at) });

function parseTime(field: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw Errors.badRequest(`querystring/${field} must be an ISO 8601 time or epoch milliseconds`);
  return ms;
}

const auditPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  app.get(
    '/api/v1/audit',
    {
      schema: {
        summary: 'Audit log entries, newest first; page with cursor=nextCursor',
        querystring: Type.Object(
          {
            actor: Type.Optional(Type.String({ maxLength: 200, description: 'user:<name>, system, device:<id>, anonymous; a bare name means user:<name>' })),
            action: Type.Optional(Type.String({ maxLength: 64 })),
            target: Type.Optional(Type.String({ maxLength: 300, description: 'exact, or a prefix ending in *' })),
            from: Type.Optional(Type.String({ maxLength: 40, description: 'inclusive; ISO 8601 or epoch ms' })),
            to: Type.Optional(Type.String({ maxLength: 40, description: 'exclusive; ISO 8601 or epoch ms' })),
            limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }),
            cursor: Type.Optional(Type.Integer({ minimum: 1 })),
          },
          { additionalProperties: false },
        ),
        response: { 200: Type.Object({ entries: Type.Array(AuditEntryView), nextCursor: Type.Union([Type.Integer(), Type.Null()]) }), ...errorResponses },
      },
    },
    async (request) => {
      const q = request.query;
      const actor = q.actor === undefined || q.actor.includes(':') || ['system', 'anonymous'].includes(q.actor) ? q.actor : `user:${q.actor}`;
      const entries = ctx.audit.list({ actor, action: q.action, target: q.target, from: parseTime('from', q.from), to: parseTime('to', q.to), before: q.cursor, limit: q.limit });
      return { entries: entries.map(view), nextCursor: entries.length === q.limit ? entries[entries.length - 1]!.id : null };
    },
  );

  app.get(
    '/api/v1/audit/head',
    { schema: { summary: 'The id and hash of the newest audit entry: an anchor to keep elsewhere', response: { 200: Type.Object({ id: Type.Integer(), hash: Type.String() }), ...errorResponses } } },
    async () => ctx.audit.head() ?? { id: 0, hash: GENESIS_HASH },
  );
};

export default auditPlugin;
