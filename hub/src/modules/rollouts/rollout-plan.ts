/**
 * The arithmetic of a staged rollout, free of I/O so the engine's decisions can be tested with
 * plain values: which devices come next (a stable hash order), how many a stage wants, and how a
 * stage stands (success and failure shares).
 *
 * Stages are cumulative: "1 %, 10 %, 100 %" means the first stage updates 1 % of the cohort, the
 * second brings the total to 10 %. Shares are taken over every device the rollout has updated so
 * far, so an early failure keeps counting in later stages.
 */
import { createHash } from 'node:crypto';
import type { StageSpec } from './rollout-spec.js';
import type { RolloutDeviceRow } from './rollouts.repository.js';

/**
 * Devices ordered by SHA-256 of rollout id and device id: stable across evaluations and hub
 * restarts, independent of enrollment order and labels, and different per rollout so the same
 * device is not always the canary.
 */
export function hashOrder(rolloutId: string, deviceIds: Iterable<string>): string[] {
  return [...deviceIds]
    .map((id) => ({ id, key: createHash('sha256').update(rolloutId).update('\0').update(id).digest('hex') }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((e) => e.id);
}

/**
 * How many devices of a cohort of `cohortSize` a stage wants updated in total. A share rounds up
 * (1 % of 50 is one device, never none); a count is capped by the cohort; a stage never wants
 * fewer than the stage before it did (the cohort may have shrunk).
 */
export function stageTarget(stage: StageSpec, cohortSize: number, previousTarget: number): number {
  const wanted = 'percent' in stage.size ? Math.ceil((stage.size.percent / 100) * cohortSize - 1e-9) : Math.min(stage.size.count, cohortSize);
  return Math.max(wanted, previousTarget);
}

/** The target of stage `index`, taking every earlier stage into account. */
export function cumulativeTarget(stages: readonly StageSpec[], index: number, cohortSize: number): number {
  let target = 0;
  for (let i = 0; i <= index && i < stages.length; i++) target = stageTarget(stages[i]!, cohortSize, target);
  return target;
}

export interface StageCounts {
  /** Devices the rollout told to change (forward), in this and earlier stages. */
  updated: number;
  committed: number;
  failed: number;
  timedOut: number;
  /** Told, no final report yet, not timed out. */
  inProgress: number;
}

export function countDevices(rows: readonly RolloutDeviceRow[]): StageCounts {
  const counts: StageCounts = { updated: 0, committed: 0, failed: 0, timedOut: 0, inProgress: 0 };
  for (const row of rows) {
    if (row.state === 'reverting' || row.state === 'reverted' || row.state === 'kept') continue;
    counts.updated++;
    if (row.state === 'committed') counts.committed++;
    else if (row.state === 'failed') counts.failed++;
    else if (row.state === 'timed_out') counts.timedOut++;
    else counts.inProgress++;
  }
  return counts;
}

export interface StageJudgement {
  /** Failed devices as a share (%) of the updated ones. */
  failureShare: number;
  /** Committed devices as a share (%) of the updated ones that did not time out. */
  successShare: number;
  /** The failure threshold is exceeded. */
  breached: boolean;
  /** Every device the stage wants is told, and enough of them committed. */
  healthy: boolean;
}

/**
 * A timed-out device counts neither as a success nor as a failure (it was offline, not refused):
 * it leaves the success share's denominator, so an offline device cannot hold a stage forever,
 * and it stays in the failure share's, so many offline devices cannot hide a failure. A stage
 * whose devices all timed out has no evidence and is not healthy (unless it asks for 0 %).
 */
export function judgeStage(stage: StageSpec, counts: StageCounts, target: number): StageJudgement {
  const failureShare = counts.updated === 0 ? 0 : (100 * counts.failed) / counts.updated;
  const judged = counts.updated - counts.timedOut;
  const successShare = judged === 0 ? 0 : (100 * counts.committed) / judged;
  return {
    failureShare,
    successShare,
    breached: failureShare > stage.failureThreshold,
    healthy: counts.updated >= target && successShare >= stage.successThreshold,
  };
}
