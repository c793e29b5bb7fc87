/**
 * What the API, the CLI and the console show of a rollout: its spec in the operator's units, the
 * progress of every stage against its target, the device counts, the current stage's shares and
 * gate values against their thresholds, why it waits or stopped, and its recent history.
 */
import { Type, type Static } from 'typebox';
import { IsoTime, iso } from '../../infra/api-schemas.js';
import type { HubContext } from '../../infra/context.js';
import { windowState } from './maintenance-window.js';
import { countDevices, cumulativeTarget, judgeStage } from './rollout-plan.js';
import type { StageSpec } from './rollout-spec.js';
import { ROLLOUT_DEVICE_STATES, ROLLOUT_STATES, type RolloutDeviceRow, type RolloutRow } from './rollouts.repository.js';

const Open = Type.Unknown();

export const StageView = Type.Object({
  index: Type.Integer(),
  size: Type.Union([Type.String(), Type.Integer()]),
  target: Type.Integer(),
  successThreshold: Type.Number(),
  failureThreshold: Type.Number(),
  bakeMs: Type.Integer(),
  timeoutMs: Type.Integer(),
  gates: Open,
  status: Type.Union([Type.Literal('done'), Type.Literal('active'), Type.Literal('pending')]),
  /** Devices told to change in this stage, and how many of them committed. */
  assigned: Type.Integer(),
  committed: Type.Integer(),
});

export const RolloutView = Type.Object({
  id: Type.String(),
  kind: Type.String(),
  model: Type.String(),
  digest: Type.String(),
  state: Type.Enum(ROLLOUT_STATES),
  target: Open,
  breachPolicy: Type.String(),
  rateLimit: Type.Union([Type.Object({ devicesPerMinute: Type.Integer() }), Type.Null()]),
  startAt: IsoTime,
  window: Type.Union([
    Type.Object({ cron: Type.String(), durationMs: Type.Integer(), timezone: Type.String(), open: Type.Boolean(), opensAt: IsoTime, closesAt: IsoTime }),
    Type.Null(),
  ]),
  description: Type.Union([Type.String(), Type.Null()]),
  cohort: Type.Integer(),
  stage: Type.Integer(),
  stages: Type.Array(StageView),
  devices: Type.Record(Type.String(), Type.Integer()),
  current: Type.Object({
    failureShare: Type.Number(),
    successShare: Type.Number(),
    healthySince: IsoTime,
    bakeEndsAt: IsoTime,
    gates: Open,
  }),
  waiting: Open,
  stopReason: Open,
  createdBy: Type.String(),
  createdAt: IsoTime,
  startedAt: IsoTime,
  finishedAt: IsoTime,
  updatedAt: IsoTime,
  history: Type.Array(Type.Object({ ts: IsoTime, kind: Type.String(), detail: Open })),
});
export type RolloutViewT = Static<typeof RolloutView>;

export const RolloutDeviceView = Type.Object({
  deviceId: Type.String(),
  stage: Type.Integer(),
  state: Type.Enum(ROLLOUT_DEVICE_STATES),
  phase: Type.Union([Type.String(), Type.Null()]),
  reason: Type.Union([Type.String(), Type.Null()]),
  previousModel: Type.Union([Type.String(), Type.Null()]),
  assignedAt: IsoTime,
  updatedAt: IsoTime,
});

const sizeText = (s: StageSpec): string | number => ('percent' in s.size ? `${s.size.percent}%` : s.size.count);

export function rolloutView(ctx: HubContext, r: RolloutRow, historyLimit = 50): RolloutViewT {
  const repo = ctx.rollouts.repo;
  const rows = repo.devices(r.id);
  const size = ctx.rollouts.cohortOf(r, rows).size;
  const now = ctx.clock();
  const stage = r.spec.stages[r.stage]!;
  const counts = countDevices(rows);
  const judgement = judgeStage(stage, counts, cumulativeTarget(r.spec.stages, r.stage, size));
  const finished = r.state === 'completed';
  const devices: Record<string, number> = {};
  for (const d of rows) devices[d.state] = (devices[d.state] ?? 0) + 1;
  const w = r.spec.window ? windowState(r.spec.window, now) : null;
  return {
    id: r.id,
    kind: r.kind,
    model: `${r.modelName}@${r.modelVersion}`,
    digest: r.digest,
    state: r.state,
    target: r.spec.target,
    breachPolicy: r.spec.breachPolicy,
    rateLimit: r.spec.devicesPerMinute === null ? null : { devicesPerMinute: r.spec.devicesPerMinute },
    startAt: iso(r.spec.startAt),
    window: r.spec.window && w ? { ...r.spec.window, open: w.open, opensAt: iso(w.opensAt), closesAt: iso(w.closesAt) } : null,
    description: r.spec.description,
    cohort: size,
    stage: r.stage,
    stages: r.spec.stages.map((s, index) => ({
      index,
      size: sizeText(s),
      target: cumulativeTarget(r.spec.stages, index, size),
      successThreshold: s.successThreshold,
      failureThreshold: s.failureThreshold,
      bakeMs: s.bakeMs,
      timeoutMs: s.timeoutMs,
      gates: s.gates,
      status: finished || index < r.stage ? ('done' as const) : index === r.stage ? ('active' as const) : ('pending' as const),
      assigned: rows.filter((d) => d.stage === index).length,
      committed: rows.filter((d) => d.stage === index && d.state === 'committed').length,
    })),
    devices,
    current: {
      failureShare: Math.round(judgement.failureShare * 100) / 100,
      successShare: Math.round(judgement.successShare * 100) / 100,
      healthySince: iso(r.stageHealthyAt),
      bakeEndsAt: iso(r.stageHealthyAt === null ? null : r.stageHealthyAt + stage.bakeMs),
      gates: r.gates,
    },
    waiting: r.waiting,
    stopReason: r.stopReason,
    createdBy: r.createdBy,
    createdAt: iso(r.createdAt),
    startedAt: iso(r.startedAt),
    finishedAt: iso(r.finishedAt),
    updatedAt: iso(r.updatedAt),
    history: repo.history(r.id, historyLimit).map((h) => ({ ts: iso(h.ts), kind: h.kind, detail: h.detail })),
  };
}

export function rolloutDeviceView(d: RolloutDeviceRow) {
  return {
    deviceId: d.deviceId,
    stage: d.stage,
    state: d.state,
    phase: d.phase,
    reason: d.reason,
    previousModel: d.previousModel,
    assignedAt: iso(d.assignedAt),
    updatedAt: iso(d.updatedAt),
  };
}
