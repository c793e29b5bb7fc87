/**
 * The fleet table's filters and sort, applied in the browser to the list the hub sent (the
 * whole fleet is already there for the counters, and a keystroke must not wait for a round
 * trip). The label selector is the hub's own syntax and semantics (selector-check.ts), so a
 * filter here shows exactly the devices `GET /api/v1/devices?selector=` and a rollout target.
 */
import type { Alert, Device } from './api.js';
import { matchesSelector, type Selector } from './selector-check.js';
import { modelRef } from './format.js';

export type StatusFilter = 'all' | 'online' | 'offline';
/** `''` is every version; `NO_MODEL` the devices serving none. */
export const NO_MODEL = '(none)';

/** A device's unresolved alerts, for the fleet's badges and the attention filter. */
export interface AlertBadge {
  count: number;
  drift: boolean;
  critical: boolean;
}

/** Unresolved alerts grouped by device. */
export function alertBadges(alerts: readonly Alert[]): Map<string, AlertBadge> {
  const badges = new Map<string, AlertBadge>();
  for (const alert of alerts) {
    if (alert.state === 'resolved') continue;
    const badge = badges.get(alert.deviceId) ?? { count: 0, drift: false, critical: false };
    badge.count += 1;
    badge.drift ||= alert.cause === 'drift';
    badge.critical ||= alert.severity === 'critical';
    badges.set(alert.deviceId, badge);
  }
  return badges;
}

export type AttentionFilter = 'any' | 'alerting' | 'drifting';

export interface DeviceFilter {
  selector: Selector;
  status: StatusFilter;
  /** `name@version`, NO_MODEL, or '' for any. */
  version: string;
  /** Case-insensitive substring of the device id. */
  text: string;
  /** Devices with unresolved alerts, or drift alerts (needs `badges`). */
  attention?: AttentionFilter;
}

export const EMPTY_FILTER: DeviceFilter = { selector: [], status: 'all', version: '', text: '' };

export function matchesFilter(device: Device, filter: DeviceFilter, badges?: ReadonlyMap<string, AlertBadge>): boolean {
  if (filter.attention === 'alerting' && !badges?.has(device.id)) return false;
  if (filter.attention === 'drifting' && !badges?.get(device.id)?.drift) return false;
  if (filter.status === 'online' && !device.online) return false;
  if (filter.status === 'offline' && device.online) return false;
  if (filter.version !== '') {
    const version = device.active ? modelRef(device.active) : NO_MODEL;
    if (version !== filter.version) return false;
  }
  if (filter.text !== '' && !device.id.toLowerCase().includes(filter.text.toLowerCase())) return false;
  return filter.selector.length === 0 || matchesSelector(filter.selector, device.labels);
}

export function filterDevices(devices: readonly Device[], filter: DeviceFilter, badges?: ReadonlyMap<string, AlertBadge>): readonly Device[] {
  const idle = filter.selector.length === 0 && filter.status === 'all' && filter.version === '' && filter.text === '' && (filter.attention ?? 'any') === 'any';
  return idle ? devices : devices.filter((device) => matchesFilter(device, filter, badges));
}

/** Every `name@version` served in the fleet, for the version filter's options (sorted). */
export function versionsOf(devices: readonly Device[]): string[] {
  const versions = new Set<string>();
  for (const device of devices) if (device.active) versions.add(modelRef(device.active));
  return [...versions].sort(byText.compare);
}

export type SortKey = 'id' | 'status' | 'model' | 'lastSeen';
export interface Sort {
  key: SortKey;
  descending: boolean;
}

const byText = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });

function compareBy(key: SortKey): (a: Device, b: Device) => number {
  switch (key) {
    case 'id':
      return (a, b) => byText.compare(a.id, b.id);
    case 'status':
      return (a, b) => Number(b.online) - Number(a.online) || byText.compare(a.id, b.id);
    case 'model':
      return (a, b) => byText.compare(a.active ? modelRef(a.active) : '', b.active ? modelRef(b.active) : '') || byText.compare(a.id, b.id);
    case 'lastSeen':
      return (a, b) => (b.lastSeenAt ?? '').localeCompare(a.lastSeenAt ?? '') || byText.compare(a.id, b.id);
  }
}

/** A new sorted array; ties break on the id so rows never jump between refreshes. */
export function sortDevices(devices: readonly Device[], sort: Sort = { key: 'id', descending: false }): Device[] {
  const compare = compareBy(sort.key);
  const sorted = [...devices].sort(compare);
  return sort.descending ? sorted.reverse() : sorted;
}
