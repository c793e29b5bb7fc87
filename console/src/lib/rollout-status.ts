/** How a rollout's state and an action's availability read in the console. */
import type { RolloutAction, RolloutState } from './api.js';

/** Which operator actions the hub accepts in each state (rollout-engine.ts refuses the rest with 409). */
const ACTIONS: Record<RolloutState, readonly RolloutAction[]> = {
  created: ['start', 'abort'],
  scheduled: ['pause', 'abort'],
  running: ['pause', 'abort', 'rollback'],
  paused: ['resume', 'abort', 'rollback'],
  completed: ['rollback'],
  aborted: ['rollback'],
  rolled_back: [],
};

export function actionsFor(state: RolloutState): readonly RolloutAction[] {
  return ACTIONS[state] ?? [];
}

export function stateTone(state: RolloutState): 'ok' | 'progress' | 'warning' | 'danger' | '' {
  switch (state) {
    case 'completed':
      return 'ok';
    case 'running':
    case 'scheduled':
      return 'progress';
    case 'paused':
    case 'created':
      return 'warning';
    case 'aborted':
    case 'rolled_back':
      return 'danger';
  }
}

const GATE_LABELS: Record<string, string> = {
  driftPsi: 'drift PSI',
  latencyP95Ratio: 'p95 latency ratio',
  errorRateDelta: 'error rate increase',
  alertRateDelta: 'alert rate increase',
};

/** A quality gate's name (quality-gates.ts GATE_NAMES) for people. */
export function gateLabel(gate: string): string {
  return GATE_LABELS[gate] ?? gate;
}

/** The engine's `stopReason` (rollouts.repository.ts StopReason) as a sentence. */
export function stopReasonText(reason: unknown, state: RolloutState): string {
  if (!reason || typeof reason !== 'object') return '';
  const r = reason as { kind?: string; actor?: string; stage?: number; cause?: string; detail?: unknown };
  const stage = typeof r.stage === 'number' ? ` at stage ${r.stage + 1}` : '';
  const verb = state === 'aborted' ? 'Aborted' : state === 'rolled_back' ? 'Rolled back' : 'Paused';
  if (r.kind === 'operator') return `${verb} by ${r.actor ?? 'an operator'}${stage}.`;
  if (r.kind === 'breach') {
    const cause = r.cause === 'failure_threshold' ? 'the failure threshold was exceeded' : `the ${gateLabel(r.cause ?? 'unknown')} gate was breached`;
    return `${verb}${stage}: ${cause}${r.detail === undefined ? '' : ` (${JSON.stringify(r.detail)})`}.`;
  }
  return JSON.stringify(reason);
}

/** The engine's `waiting` (why no more devices are told right now) as a sentence. */
export function waitingText(waiting: unknown): string {
  if (!waiting || typeof waiting !== 'object') return '';
  const w = waiting as { reason?: string; opensAt?: number | string; perMinute?: number; devices?: number; canary?: number; startAt?: number | string };
  const at = (time: number | string | undefined) => (time === undefined ? 'later' : new Date(time).toLocaleString());
  switch (w.reason) {
    case 'scheduled':
      return `Scheduled to start ${at(w.startAt)}.`;
    case 'outside_window':
      return `Outside the maintenance window; it opens ${at(w.opensAt)}.`;
    case 'rate_limited':
      return `Rate limited to ${w.perMinute} devices per minute.`;
    case 'approval_required':
      return `The model is not approved: at most ${w.canary} device(s) as a canary; ${w.devices} more wait for an approval.`;
    default:
      return JSON.stringify(waiting);
  }
}
