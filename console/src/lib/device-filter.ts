/**
 * The fleet view's text filter, applied in the browser for now. A device matches when every
 * whitespace-separated term (case-insensitive) occurs in its id, in a label key or value, or in
 * `key=value`, so "plant-3", "line=a" and "plant-3 line=a" all work as operators expect.
 * Server-side label selectors (`site=plant-3,line in (a,b)`) come with the full fleet page.
 */
import type { Device } from './api';

export function filterTerms(query: string): string[] {
  return query.toLowerCase().split(/\s+/).filter((term) => term !== '');
}

export function matchesFilter(device: Device, terms: readonly string[]): boolean {
  if (terms.length === 0) return true;
  const haystack = [device.id, ...Object.entries(device.labels).map(([key, value]) => `${key}=${value}`)].map((text) => text.toLowerCase());
  return terms.every((term) => haystack.some((text) => text.includes(term)));
}

export function filterDevices(devices: readonly Device[], query: string): readonly Device[] {
  const terms = filterTerms(query);
  return terms.length === 0 ? devices : devices.filter((device) => matchesFilter(device, terms));
}
