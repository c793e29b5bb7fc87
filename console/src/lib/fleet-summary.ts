/** The fleet page's counters, from the device list the page already holds. */
import type { Device } from './api.js';

export interface FleetSummary {
  total: number;
  online: number;
  offline: number;
  /** Devices with an active model, whatever their connection state. */
  serving: number;
  /** Devices whose last reported deployment failed or rolled back. */
  troubled: number;
}

export function summarize(devices: readonly Device[]): FleetSummary {
  let online = 0;
  let serving = 0;
  let troubled = 0;
  for (const device of devices) {
    if (device.online) online += 1;
    if (device.active) serving += 1;
    if (device.deployment?.phase === 'failed' || device.deployment?.phase === 'rolled_back') troubled += 1;
  }
  return { total: devices.length, online, offline: devices.length - online, serving, troubled };
}
