/**
 * Drift hysteresis, pure: turns a device's stream of drift statuses (one per telemetry summary)
 * into alert transitions so that one noisy window never flaps an alert.
 *
 * Contract:
 * - closed → open after `openAfter` consecutive summaries with status `alert`;
 * - open → closed after `resolveAfter` consecutive summaries with status `ok`;
 * - `warn` holds the state and breaks both streaks (neither "consecutive alert" nor
 *   "consecutive ok" survives it), so alert/warn/alert does not open and ok/warn/ok does not
 *   resolve.
 * The state is three numbers, stored per device in SQLite by the alerts repository, so a hub
 * restart continues the streaks where they were. The monitoring benchmark replays summaries
 * through `stepDrift` to count hub-level alerts.
 */
import type { DriftSummaryT } from '@cairn/shared';

export type DriftStatus = DriftSummaryT['status'];

export interface DriftHysteresisState {
  open: boolean;
  /** Consecutive `alert` summaries so far (counts only while closed). */
  alertStreak: number;
  /** Consecutive `ok` summaries so far (counts only while open). */
  okStreak: number;
}

export interface DriftHysteresisConfig {
  openAfter: number;
  resolveAfter: number;
}

export const CLOSED_DRIFT_STATE: DriftHysteresisState = Object.freeze({ open: false, alertStreak: 0, okStreak: 0 });

export const sameDriftState = (a: DriftHysteresisState, b: DriftHysteresisState): boolean => a.open === b.open && a.alertStreak === b.alertStreak && a.okStreak === b.okStreak;

export interface DriftStep {
  state: DriftHysteresisState;
  /** `open`: raise a drift alert now; `resolve`: resolve it; null: nothing changes. */
  transition: 'open' | 'resolve' | null;
}

export function stepDrift(state: DriftHysteresisState, status: DriftStatus, config: DriftHysteresisConfig): DriftStep {
  if (status === 'warn') return { state: { open: state.open, alertStreak: 0, okStreak: 0 }, transition: null };
  if (!state.open) {
    if (status === 'ok') return { state: { open: false, alertStreak: 0, okStreak: 0 }, transition: null };
    const alertStreak = state.alertStreak + 1;
    return alertStreak >= config.openAfter ? { state: { open: true, alertStreak: 0, okStreak: 0 }, transition: 'open' } : { state: { open: false, alertStreak, okStreak: 0 }, transition: null };
  }
  if (status === 'alert') return { state: { open: true, alertStreak: 0, okStreak: 0 }, transition: null };
  const okStreak = state.okStreak + 1;
  return okStreak >= config.resolveAfter ? { state: { ...CLOSED_DRIFT_STATE }, transition: 'resolve' } : { state: { open: true, alertStreak: 0, okStreak }, transition: null };
}

/** Replays statuses from the closed state; returns how many times an alert opened (the benchmark's count). */
export function countDriftAlerts(statuses: Iterable<DriftStatus>, config: DriftHysteresisConfig): number {
  let state: DriftHysteresisState = CLOSED_DRIFT_STATE;
  let opened = 0;
  for (const status of statuses) {
    const step = stepDrift(state, status, config);
    state = step.state;
    if (step.transition === 'open') opened++;
  }
  return opened;
}
