/**
 * Webhooks module: delivers alert and work-order events to the endpoints of `webhooks.endpoints`.
 * `alert.changed` / `workorder.changed` become events `alert.<change>` / `work_order.<change>`;
 * each endpoint receives the types it lists (default: every work-order event), as
 * `{id, type, occurredAt, data}` with `data` the API view. The rows are queued in SQLite right
 * after the change's own commit (synchronously, no await in between), then delivered by
 * `webhook-delivery.ts`. `GET /api/v1/webhooks` (admin) shows endpoints — never their secrets,
 * nor credentials in their URLs — with queue counts and recent deliveries.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ModuleOptions } from '../../infra/context.js';
import { WEBHOOK_EVENT_TYPES } from '../../infra/config.js';
import { errorResponses, iso, IsoTime } from '../../infra/api-schemas.js';
import { DELIVERY_STATES, WebhookQueueRepository } from './webhook-queue.repository.js';
import { splitCredentials, WebhookDelivery, type WebhookEndpoint } from './webhook-delivery.js';

export const DEFAULT_WEBHOOK_EVENTS: readonly string[] = WEBHOOK_EVENT_TYPES.filter((t) => t.startsWith('work_order.'));

const EndpointView = Type.Object({
  name: Type.String(),
  /** Without any user:password part. */
  url: Type.String(),
  events: Type.Array(Type.String()),
  pending: Type.Integer(),
  delivered: Type.Integer(),
  failed: Type.Integer(),
});
const DeliveryView = Type.Object({
  id: Type.String(),
  eventId: Type.String(),
  endpoint: Type.String(),
  eventType: Type.String(),
  state: Type.Enum(DELIVERY_STATES),
  attempts: Type.Integer(),
  nextAttemptAt: IsoTime,
  createdAt: IsoTime,
  lastAttemptAt: IsoTime,
  lastStatus: Type.Union([Type.Integer(), Type.Null()]),
  lastError: Type.Union([Type.String(), Type.Null()]),
  finishedAt: IsoTime,
});

const webhooksPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  // Event types and unique names were checked with the rest of the configuration (infra/config.ts).
  const endpoints = new Map<string, WebhookEndpoint>(ctx.config.webhooks.endpoints.map((e) => [e.name, e]));
  const queue = new WebhookQueueRepository(ctx.db);
  const delivery = new WebhookDelivery(ctx, queue, endpoints);
  const subscribers = (type: string) => [...endpoints.values()].filter((e) => (e.events ?? DEFAULT_WEBHOOK_EVENTS).includes(type)).map((e) => e.name);

  const enqueue = (type: string, data: unknown) => {
    const names = subscribers(type);
    if (names.length === 0) return;
    try {
      const now = ctx.clock();
      const id = randomUUID();
      queue.enqueue({ id, type, body: JSON.stringify({ id, type, occurredAt: iso(now), data }) }, names, now);
      ctx.metrics.webhookQueueDepth.set(queue.pendingCount());
      delivery.kick();
    } catch (err) {
      ctx.logger.error({ err, type }, 'could not queue a webhook event');
    }
  };
  const unsubscribe = [
    ctx.bus.on('alert.changed', ({ change, alert }) => enqueue(`alert.${change}`, alert)),
    ctx.bus.on('workorder.changed', ({ change, workOrder }) => enqueue(`work_order.${change}`, workOrder)),
  ];
  fastify.addHook('onReady', async () => delivery.start());
  // preClose: the root's onClose closes the database before the modules' onClose hooks run.
  fastify.addHook('preClose', async () => {
    for (const off of unsubscribe) off();
    await delivery.stop();
  });

  app.get(
    '/api/v1/webhooks',
    {
      schema: {
        summary: 'Webhook endpoints (without secrets) with their queue counts, and recent deliveries',
        querystring: Type.Object({ state: Type.Optional(Type.Enum(DELIVERY_STATES)), endpoint: Type.Optional(Type.String({ maxLength: 64 })), limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }) }),
        response: { 200: Type.Object({ endpoints: Type.Array(EndpointView), deliveries: Type.Array(DeliveryView) }), ...errorResponses },
      },
    },
    async (request) => {
      const counts = queue.counts();
      return {
        endpoints: [...endpoints.values()].map((e) => ({ name: e.name, url: splitCredentials(e.url).url, events: [...(e.events ?? DEFAULT_WEBHOOK_EVENTS)], ...(counts.get(e.name) ?? { pending: 0, delivered: 0, failed: 0 }) })),
        deliveries: queue.recent(request.query).map((d) => ({
          id: d.id,
          eventId: d.eventId,
          endpoint: d.endpoint,
          eventType: d.eventType,
          state: d.state,
          attempts: d.attempts,
          nextAttemptAt: d.state === 'pending' ? iso(d.nextAttemptAt) : null,
          createdAt: iso(d.createdAt),
          lastAttemptAt: iso(d.lastAttemptAt),
          lastStatus: d.lastStatus,
          lastError: d.lastError,
          finishedAt: iso(d.finishedAt),
        })),
      };
    },
  );
};

export default webhooksPlugin;
