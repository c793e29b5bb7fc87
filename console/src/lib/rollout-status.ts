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
