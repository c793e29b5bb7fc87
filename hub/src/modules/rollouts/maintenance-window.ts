/**
 * Maintenance windows: a five-field cron expression in a time zone says when a window opens, and
 * it stays open for `durationMs`. A rollout tells no device to change while its window is closed
 * (devices already told keep converging: the window governs orders, not the agents).
 */
import { CronExpressionParser } from 'cron-parser';
import type { MaintenanceWindow } from './rollout-spec.js';

export interface WindowState {
  open: boolean;
  /** While open: when it closes. */
  closesAt: number | null;
  /** While closed: when it next opens. */
  opensAt: number | null;
}

export function windowState(window: MaintenanceWindow, now: number): WindowState {
  // prev() is strictly before currentDate: +1 ms makes an occurrence at exactly `now` count.
  const previous = CronExpressionParser.parse(window.cron, { currentDate: new Date(now + 1), tz: window.timezone }).prev().getTime();
  if (now < previous + window.durationMs) return { open: true, closesAt: previous + window.durationMs, opensAt: null };
  const next = CronExpressionParser.parse(window.cron, { currentDate: new Date(now), tz: window.timezone }).next().getTime();
  return { open: false, closesAt: null, opensAt: next };
}
