/**
 * The one path by which device messages enter the hub: subscribe to one topic kind for the
 * whole fleet, parse the topic, decode and validate the payload, and hand the typed value to the
 * module's handler. A message that fails any step is dropped, counted by kind and reason, and
 * logged with the device id; the hub keeps serving.
 */
import type { Logger } from 'pino';
import { decodePayload, fleetSubscription, parseDeviceTopic, type PayloadOf } from '@cairn/shared';
import type { BrokerPort } from './broker.js';
import type { HubMetrics } from './metrics.js';

export type DeviceJsonKind = 'presence' | 'reported' | 'telemetry' | 'events' | 'blob/req' | 'cmd/res';

export interface IngressContext {
  broker: BrokerPort;
  metrics: HubMetrics;
  logger: Logger;
}

export function onDeviceMessage<K extends DeviceJsonKind>(
  ctx: IngressContext,
  kind: K,
  handler: (deviceId: string, payload: PayloadOf<K>) => void | Promise<void>,
): Promise<void> {
  const received = ctx.metrics.receivedMessages.labels({ kind }); // bound once: the label lookup is per-message work otherwise
  return ctx.broker.subscribe(fleetSubscription(kind), (topic, raw) => {
    const parsed = parseDeviceTopic(topic);
    if (!parsed || parsed.kind !== kind) {
      ctx.metrics.rejectedMessages.inc({ kind, reason: 'bad_topic' });
      ctx.logger.warn({ topic }, 'dropped message on a malformed topic');
      return;
    }
    const decoded = decodePayload(kind, raw);
    if (!decoded.ok) {
      ctx.metrics.rejectedMessages.inc({ kind, reason: decoded.reason });
      ctx.logger.warn({ deviceId: parsed.deviceId, kind, reason: decoded.reason, detail: decoded.message.slice(0, 300) }, 'dropped invalid device message');
      return;
    }
    received.inc();
    return handler(parsed.deviceId, decoded.value);
  });
}
