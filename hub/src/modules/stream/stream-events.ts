/**
 * What the live stream says: its event names, which bus event each comes from, and the
 * server-sent-events wire format (https://html.spec.whatwg.org/multipage/server-sent-events.html).
 *
 * | event            | data                                         | from the bus          |
 * |------------------|----------------------------------------------|-----------------------|
 * | `device`         | {deviceId, online, active, deployment}        | device.presence, device.reported (only when one of these changed) |
 * | `rollout`        | {rolloutId, state, stage, transition}         | rollout.changed       |
 * | `rollout_device` | {rolloutId, deviceId, state, reason}          | rollout.device        |
 * | `alert`          | {change, alert}                              | alert.changed         |
 * | `work_order`     | {change, workOrder}                          | workorder.changed     |
 * | `telemetry`      | {deviceId, telemetry} (no id, not journaled)  | telemetry.stored, only to `?device=` clients of that device |
 * | `reset`          | {reason, lastEventId}                        | a resume the journal cannot serve |
 */
import type { ActiveBundleT, DeploymentStatusT } from '@cairn/shared';
import type { EventBus, HubEvents } from '../../infra/bus.js';
import type { DevicesRepository } from '../devices/devices.repository.js';

export const JOURNALED_EVENTS = ['device', 'rollout', 'rollout_device', 'alert', 'work_order'] as const;
export type JournaledEventName = (typeof JOURNALED_EVENTS)[number];

export interface DeviceStreamEvent {
  deviceId: string;
  online: boolean;
  active: ActiveBundleT | null;
  deployment: DeploymentStatusT | null;
}

/**
 * Calls `journaled` for each bus event the stream carries to everyone, and `telemetry` for each
 * stored summary. A device's `device` event is sent only when its online flag, active bundle or
 * deployment changed: agents re-send their reported state (reconnects, label changes) and the
 * stream need not repeat it. Returns the unsubscribe function.
 */
export function subscribeStreamEvents(
  bus: EventBus,
  devices: DevicesRepository,
  journaled: (event: JournaledEventName, data: unknown) => void,
  telemetry: (data: HubEvents['telemetry.stored']) => void,
): () => void {
  const lastDeviceState = new Map<string, string>();
  const deviceChanged = ({ deviceId }: { deviceId: string }) => {
    const device = devices.get(deviceId);
    if (!device) return;
    const data: DeviceStreamEvent = { deviceId, online: device.online, active: device.reported?.active ?? null, deployment: device.reported?.deployment ?? null };
    const text = JSON.stringify(data);
    if (lastDeviceState.get(deviceId) === text) return;
    lastDeviceState.set(deviceId, text);
    journaled('device', data);
  };
  const stops = [
    bus.on('device.presence', deviceChanged),
    bus.on('device.reported', deviceChanged),
    bus.on('rollout.changed', (e) => journaled('rollout', e)),
    bus.on('rollout.device', (e) => journaled('rollout_device', e)),
    bus.on('alert.changed', (e) => journaled('alert', e)),
    bus.on('workorder.changed', (e) => journaled('work_order', e)),
    bus.on('telemetry.stored', telemetry),
  ];
  return () => stops.forEach((stop) => stop());
}

/** One event as written on the wire. `data` is JSON text, which never holds a raw line break. */
export function sseFrame(event: string, data: string, id?: number): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${data}\n\n`;
}

/**
 * An id with no data: a browser's EventSource takes it as its last event id without dispatching
 * anything, so a client that sees no event before its connection breaks still resumes from here.
 */
export const sseIdOnly = (id: number): string => `id: ${id}\n\n`;

export const sseRetry = (ms: number): string => `retry: ${ms}\n\n`;

export const SSE_HEARTBEAT = ': heartbeat\n\n';
