/**
 * Telemetry module (minimal): idempotent ingest of interval summaries and a per-device query.
 * Rollups, retention and fleet queries arrive with the monitoring capability.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { Telemetry } from '@cairn/shared';
import type { ModuleOptions } from '../../infra/context.js';
import { onDeviceMessage } from '../../infra/device-ingress.js';
import { Errors } from '../../infra/errors.js';
import { errorResponses } from '../../infra/api-schemas.js';

/** Summaries claiming a time this far past the hub's clock are refused. */
const MAX_FUTURE_SKEW_MS = 5 * 60_000;

const telemetryPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { telemetry, devices, bus, clock, metrics, logger } = ctx;

  await onDeviceMessage(ctx, 'telemetry', (deviceId, summary) => {
    const now = clock();
    if (summary.ts > now + MAX_FUTURE_SKEW_MS) {
      metrics.rejectedMessages.inc({ kind: 'telemetry', reason: 'future_timestamp' });
      logger.warn({ deviceId, ts: summary.ts }, 'dropped telemetry from the future');
      return;
    }
    if (!telemetry.insert(deviceId, summary, now)) return;
    devices.touch(deviceId, now);
    bus.emit('telemetry.stored', { deviceId, telemetry: summary });
  });

  app.get(
    '/api/v1/devices/:id/telemetry',
    {
      schema: {
        summary: 'Telemetry summaries of one device in a time range (epoch ms, from inclusive, to exclusive)',
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        querystring: Type.Object({
          from: Type.Optional(Type.Integer({ minimum: 0 })),
          to: Type.Optional(Type.Integer({ minimum: 0 })),
          limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
        }),
        response: { 200: Type.Object({ deviceId: Type.String(), points: Type.Array(Telemetry) }), ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!devices.get(id)) throw Errors.deviceNotFound([id]);
      const to = request.query.to ?? clock() + MAX_FUTURE_SKEW_MS;
      const from = request.query.from ?? 0;
      if (from >= to) throw Errors.badRequest(`empty time range: from (${from}) must be before to (${to})`);
      return { deviceId: id, points: telemetry.range(id, from, to, request.query.limit) };
    },
  );
};

export default telemetryPlugin;
