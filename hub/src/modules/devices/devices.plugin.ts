/**
 * Devices module: presence from birth and Last Will (epoch-guarded), reported state, labels,
 * device events, command replies, and the device HTTP API.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { REJECTION_REASONS, ActiveBundle, DeploymentStatus, DeviceEvent, HardwareFacts, LabelKey, LabelValue, matchesSelector, parseSelector, SelectorSyntaxError, type Selector } from '@cairn/shared';
import type { ModuleOptions } from '../../infra/context.js';
import { onDeviceMessage } from '../../infra/device-ingress.js';
import { Errors } from '../../infra/errors.js';
import { errorResponses, iso, IsoTime } from '../../infra/api-schemas.js';
import type { Device } from './devices.repository.js';

export const DeviceView = Type.Object({
  id: Type.String(),
  online: Type.Boolean(),
  lastSeenAt: IsoTime,
  firstSeenAt: IsoTime,
  agentVersion: Type.Union([Type.String(), Type.Null()]),
  labels: Type.Record(Type.String(), Type.String()),
  operatorLabels: Type.Record(Type.String(), Type.String()),
  active: Type.Union([ActiveBundle, Type.Null()]),
  deployment: Type.Union([DeploymentStatus, Type.Null()]),
  lastDesiredSeq: Type.Union([Type.Integer(), Type.Null()]),
  /** The newest keyring the device accepted: a rotation, revocation or floor is in force on it from that version on. */
  keyringVersion: Type.Union([Type.Integer(), Type.Null()]),
  hardware: Type.Union([HardwareFacts, Type.Null()]),
});

export function deviceView(d: Device) {
  return {
    id: d.id,
    online: d.online,
    lastSeenAt: iso(d.lastSeenAt),
    firstSeenAt: iso(d.firstSeenAt),
    agentVersion: d.agentVersion,
    labels: d.labels,
    operatorLabels: d.operatorLabels,
    active: d.reported?.active ?? null,
    deployment: d.reported?.deployment ?? null,
    lastDesiredSeq: d.reported?.lastDesiredSeq ?? null,
    keyringVersion: d.reported?.keyringVersion ?? null,
    hardware: d.reported?.hardware ?? null,
  };
}

export function parseSelectorParam(text: string): Selector {
  try {
    return parseSelector(text);
  } catch (err) {
    if (err instanceof SelectorSyntaxError) throw Errors.badSelector(err.message);
    throw err;
  }
}

const devicesPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { devices, bus, logger, clock, metrics } = ctx;
  const stale = devices.markAllOffline();
  if (stale > 0) logger.info({ devices: stale }, 'marked devices offline until they reconnect');

  await onDeviceMessage(ctx, 'presence', (deviceId, presence) => {
    if (presence.online) {
      if (devices.markOnline(deviceId, presence.epoch, presence.agentVersion, clock())) {
        bus.emit('device.presence', { deviceId, online: true, epoch: presence.epoch });
      } else {
        logger.debug({ deviceId, epoch: presence.epoch }, 'ignored a birth older than the current epoch');
      }
    } else if (devices.markOffline(deviceId, presence.epoch, clock())) {
      bus.emit('device.presence', { deviceId, online: false, epoch: presence.epoch });
    } else {
      logger.debug({ deviceId, epoch: presence.epoch }, 'ignored a stale offline message');
    }
  });

  await onDeviceMessage(ctx, 'reported', (deviceId, reported) => {
    devices.saveReported(deviceId, reported, clock());
    bus.emit('device.reported', { deviceId, deployment: reported.deployment });
  });

  await onDeviceMessage(ctx, 'events', (deviceId, event) => {
    if (event.type === 'maintenance_alert' && !event.alert) {
      // The schema cannot say it: a maintenance alert must carry its alert (machine, fault, evidence).
      metrics.rejectedMessages.inc({ kind: 'events', reason: 'maintenance_without_alert' });
      logger.warn({ deviceId, eventId: event.eventId }, 'dropped a maintenance_alert event without its alert section');
      return;
    }
    if (!devices.addEvent(deviceId, event, clock())) return; // a redelivery
    if (event.type === 'maintenance_alert' && event.alert) {
      // The label comes from the device: only class-like names become metric series.
      metrics.maintenanceAlerts.inc({ fault: /^[a-z0-9_]{1,32}$/.test(event.alert.faultClass) ? event.alert.faultClass : 'other' });
      logger.info({ deviceId, machine: event.alert.machine, fault: event.alert.faultClass, confidence: event.alert.confidence }, 'maintenance alert');
    }
    if (event.type === 'desired_rejected' || (event.type === 'deployment' && (event.phase === 'failed' || event.phase === 'rolled_back'))) {
      // The label comes from the device: only known reason codes become metric series.
      const reason = event.reason && Object.hasOwn(REJECTION_REASONS, event.reason) ? event.reason : 'other';
      metrics.deviceRejections.inc({ reason });
      logger.warn({ deviceId, type: event.type, reason: event.reason, message: event.message }, 'device reported a rejection');
    }
    bus.emit('device.event', { deviceId, event });
  });

  // No hub command sender exists yet, so no reply is awaited; replies still pass through ingress so
  // that a malformed one is refused and counted like any other device message, never ignored.
  await onDeviceMessage(ctx, 'cmd/res', (deviceId, reply) => {
    logger.debug({ deviceId, transaction: reply.transaction, ok: reply.ok }, 'command reply for a transaction this hub does not wait for');
  });

  app.get(
    '/api/v1/devices',
    {
      schema: {
        summary: 'List devices, optionally filtered by a label selector',
        querystring: Type.Object({
          selector: Type.Optional(Type.String({ maxLength: 4096 })),
          online: Type.Optional(Type.Boolean()),
          count: Type.Optional(Type.Boolean({ description: 'only count the matching devices' })),
        }),
        response: { 200: Type.Object({ devices: Type.Array(DeviceView), total: Type.Integer() }), ...errorResponses },
      },
    },
    async (request) => {
      const selector = parseSelectorParam(request.query.selector ?? '');
      const matching = devices.list().filter((d) => matchesSelector(selector, d.labels) && (request.query.online === undefined || d.online === request.query.online));
      return { devices: request.query.count ? [] : matching.map(deviceView), total: matching.length };
    },
  );

  app.get(
    '/api/v1/devices/:id',
    { schema: { params: Type.Object({ id: Type.String({ maxLength: 64 }) }), response: { 200: DeviceView, ...errorResponses } } },
    async (request) => {
      const device = devices.get(request.params.id);
      if (!device) throw Errors.deviceNotFound([request.params.id]);
      return deviceView(device);
    },
  );

  app.put(
    '/api/v1/devices/:id/labels',
    {
      schema: {
        summary: 'Set (string) or remove (null) operator labels; they override labels the agent reports',
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        body: Type.Object({ labels: Type.Record(LabelKey, Type.Union([LabelValue, Type.Null()]), { maxProperties: 64, additionalProperties: false }) }, { additionalProperties: false }),
        response: { 200: DeviceView, ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      const device = ctx.db.transaction(() => {
        const before = devices.get(id);
        const after = devices.updateOperatorLabels(id, request.body.labels);
        if (!before || !after) throw Errors.deviceNotFound([id]);
        ctx.audit.append(request.actor, { action: 'device.labels', target: `device:${id}`, before: { operatorLabels: before.operatorLabels }, after: { operatorLabels: after.operatorLabels } });
        return after;
      })();
      return deviceView(device);
    },
  );

  app.get(
    '/api/v1/devices/:id/events',
    {
      schema: {
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100 }) }),
        response: { 200: Type.Object({ events: Type.Array(DeviceEvent) }), ...errorResponses },
      },
    },
    async (request) => {
      if (!devices.get(request.params.id)) throw Errors.deviceNotFound([request.params.id]);
      return { events: devices.events(request.params.id, request.query.limit) };
    },
  );
};

export default devicesPlugin;
