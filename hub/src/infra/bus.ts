/**
 * The hub's typed in-process event bus. Modules announce facts here (a device came online, a
 * deployment was created) and other modules react, without importing each other.
 */
import { EventEmitter } from 'node:events';
import type { DeploymentStatusT, DeviceEventT, TelemetryT } from '@cairn/shared';

export interface HubEvents {
  'device.presence': { deviceId: string; online: boolean; epoch: number };
  'device.reported': { deviceId: string; deployment: DeploymentStatusT | null };
  'device.event': { deviceId: string; event: DeviceEventT };
  'telemetry.stored': { deviceId: string; telemetry: TelemetryT };
  'desired.published': { deviceId: string; seq: number; deploymentId: string };
  'model.pushed': { name: string; version: string; digest: string };
  /** A rollout changed state or stage, told devices to change, or started or stopped waiting. */
  'rollout.changed': { rolloutId: string; state: string; stage: number; transition: string };
  /** A device of a rollout moved (committed, failed, reverted…). */
  'rollout.device': { rolloutId: string; deviceId: string; state: string; reason: string | null };
  /** An alert opened, recurred, was acknowledged or resolved (`change`); `alert` is its API view (alerts module). */
  'alert.changed': { change: 'opened' | 'updated' | 'acknowledged' | 'resolved'; alert: Record<string, unknown> & { id: string; deviceId: string } };
  /** A work order opened, was acknowledged or done; `workOrder` is its API view (alerts module). */
  'workorder.changed': { change: 'opened' | 'acknowledged' | 'done'; workOrder: Record<string, unknown> & { id: string; deviceId: string } };
  /** A new root-signed keyring is in force (rotation, revocation, security floor). */
  'keyring.installed': { version: number };
}

export class EventBus {
  private readonly emitter = new EventEmitter({ captureRejections: false });
  constructor() {
    this.emitter.setMaxListeners(100);
  }
  emit<K extends keyof HubEvents>(name: K, payload: HubEvents[K]): void {
    this.emitter.emit(name, payload);
  }
  on<K extends keyof HubEvents>(name: K, listener: (payload: HubEvents[K]) => void): () => void {
    this.emitter.on(name, listener);
    return () => this.emitter.off(name, listener);
  }
}
