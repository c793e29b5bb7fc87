/**
 * The rollout engine: turns a rollout's spec and the fleet's reports into orders (signed desired
 * documents) and state transitions.
 *
 * Contracts:
 * - All state is in SQLite; the engine keeps none between evaluations, so after a hub restart it
 *   resumes exactly where it was (the first tick evaluates every running rollout).
 * - Every transition (start, stage advance, breach, pause, resume, abort, rollback, completion,
 *   a batch of devices told to change, devices timing out) happens in one SQLite transaction with
 *   its history row and its audit row, and is then emitted on the bus (`rollout.changed`).
 * - Evaluations run one at a time (a promise chain): they are triggered by device reports, by
 *   operator actions and by the cron tick, and two of them must never assign the same device.
 * - One active rollout per device: the creation refuses an overlap, and the database's unique
 *   index on active claims refuses a device that joins two cohorts at once.
 * - Devices are told to change only while the maintenance window is open, within the rate
 *   limit, and (for an unapproved model) within the approval policy's canary allowance; the
 *   rollout records why it waits. A rollback ignores windows and rate limits: it is a repair.
 * - A finished rollout (completed) keeps picking up devices that join its cohort later, unless a
 *   newer rollout targets them.
 */
import { randomBytes } from 'node:crypto';
import { matchesSelector, type Selector, type DeploymentStatusT } from '@cairn/shared';
import type { HubContext } from '../../infra/context.js';
import { Errors, HubError } from '../../infra/errors.js';
import { SYSTEM_ACTOR, type AuditActor } from '../audit/audit-log.js';
import { parseSelectorParam } from '../devices/devices.plugin.js';
import { approvalShortfall, approveModel } from '../registry/approval-policy.js';
import { formatModelRef, parseModelRef } from '../registry/model-ref.js';
import type { ModelVersion } from '../registry/registry.repository.js';
import { signDesiredFor } from '../deployments/desired-signer.js';
import { windowState } from './maintenance-window.js';
import { evaluateGates, driftOf, type GateResult, type GroupData } from './quality-gates.js';
import { countDevices, cumulativeTarget, hashOrder, judgeStage } from './rollout-plan.js';
import { normalizeRolloutSpec, rolloutInvalid, type RolloutRequestT, type RolloutSpec, type StageSpec } from './rollout-spec.js';
import {
  ACTIVE_STATES,
  type RolloutChange,
  type RolloutDeviceRow,
  type RolloutKind,
  type RolloutRow,
  type RolloutState,
  type RolloutsRepository,
  type StopReason,
  type Waiting,
} from './rollouts.repository.js';

export const rolloutNotFound = (id: string) => new HubError('CAIRN_ROLLOUT_NOT_FOUND', 404, `rollout ${id} not found`);
export const rolloutState = (id: string, state: RolloutState, action: string) =>
  new HubError('CAIRN_ROLLOUT_STATE', 409, `rollout ${id} is ${state}; it cannot ${action} now`);
export const rolloutConflict = (other: RolloutRow, devices: string[]) =>
  new HubError(
    'CAIRN_ROLLOUT_CONFLICT',
    409,
    `rollout ${other.id} (${other.modelName}@${other.modelVersion}, ${other.state}) already targets ${devices.length} of these devices (${devices.slice(0, 5).join(', ')}${devices.length > 5 ? ', …' : ''}); a device takes part in one active rollout at a time: let it finish, or abort it first`,
  );

/** Deployment ids of the documents a rollback sends: `<rollout>-rb-<n>`, one per previous model. */
const ROLLBACK_ID = /^(.+)-rb-\d+$/;

/** Which action is allowed from which state. */
const ALLOWED: Record<'start' | 'pause' | 'resume' | 'abort' | 'rollback', readonly RolloutState[]> = {
  start: ['created'],
  pause: ['scheduled', 'running'],
  resume: ['paused'],
  abort: ['created', 'scheduled', 'running', 'paused'],
  rollback: ['running', 'paused', 'completed', 'aborted'],
};

export class RolloutEngine {
  private chain: Promise<void> = Promise.resolve();
  private readonly soon = new Set<string>();
  private readonly selectors = new Map<string, Selector>();
  private stopped = false;

  constructor(
    private readonly ctx: HubContext,
    /** Read access for the views; writes go through the engine. */
    readonly repo: RolloutsRepository,
  ) {}

  // ---------------------------------------------------------------------------------------------
  // Operator actions

  /**
   * Creates a rollout (and, unless `start: false`, starts it). Direct deployments are one-stage
   * rollouts of kind `direct` that tell every target at once and complete as soon as they did.
   */
  async create(actor: AuditActor, request: RolloutRequestT, kind: RolloutKind = 'staged'): Promise<RolloutRow> {
    const spec = normalizeRolloutSpec(request);
    const model = this.modelOf(request.model);
    if (model.releaseCounter < this.ctx.keys.securityFloor) throw Errors.belowFloor(formatModelRef(model), model.releaseCounter, this.ctx.keys.securityFloor);
    const cohort = this.resolveTarget(spec);
    this.assertNoConflict(cohort);
    const id = `${kind === 'direct' ? 'dep' : 'ro'}_${randomBytes(9).toString('base64url')}`;
    const now = this.ctx.clock();
    this.repo.transaction(() => {
      this.repo.insert({ id, kind, modelName: model.name, modelVersion: model.version, digest: model.digest, spec, state: 'created', createdBy: actor.actor, createdAt: now });
      // The rollout's documents carry its id as their deployment id, so the deployments views
      // and the approval policy (which counts devices per model through it) see rollouts too.
      this.ctx.deployments.insertDeployment({ id, modelName: model.name, modelVersion: model.version, digest: model.digest, target: spec.target, createdAt: now });
      this.repo.addHistory(id, now, 'created', { model: formatModelRef(model), cohort: cohort.length });
      this.ctx.audit.append(actor, {
        action: 'rollout.create',
        target: `rollout:${id}`,
        after: { kind, model: formatModelRef(model), digest: model.digest, target: summarizeTarget(spec), stages: spec.stages.length, cohort: cohort.length, breachPolicy: spec.breachPolicy },
      });
    });
    this.announce(id, 'created');
    this.ctx.logger.info({ rollout: id, kind, model: formatModelRef(model), cohort: cohort.length }, 'rollout created');
    if (request.start === false) return this.get(id);
    return this.start(actor, id);
  }

  async start(actor: AuditActor, id: string): Promise<RolloutRow> {
    const r = this.require(id, 'start');
    const now = this.ctx.clock();
    const scheduled = r.spec.startAt !== null && r.spec.startAt > now;
    this.transition(r, actor, 'started', { state: scheduled ? 'scheduled' : 'running', startedAt: now, stageStartedAt: now, waiting: scheduled ? { reason: 'scheduled', startAt: r.spec.startAt! } : null }, {}, undefined, now);
    await this.evaluate(id);
    return this.get(id);
  }

  async pause(actor: AuditActor, id: string): Promise<RolloutRow> {
    const r = this.require(id, 'pause');
    this.transition(r, actor, 'paused', { state: 'paused', stopReason: { kind: 'operator', actor: actor.actor, stage: r.stage } }, {});
    return this.get(id);
  }

  async resume(actor: AuditActor, id: string): Promise<RolloutRow> {
    const r = this.require(id, 'resume');
    // The bake restarts: whatever tripped the pause must stay quiet for a whole bake again.
    this.transition(r, actor, 'resumed', { state: 'running', stopReason: null, stageHealthyAt: null }, { after: r.stopReason });
    await this.evaluate(id);
    return this.get(id);
  }

  /** Stops telling devices to change; they stay where they are. */
  async abort(actor: AuditActor, id: string): Promise<RolloutRow> {
    const r = this.require(id, 'abort');
    const now = this.ctx.clock();
    this.transition(r, actor, 'aborted', { state: 'aborted', finishedAt: now, waiting: null, stopReason: { kind: 'operator', actor: actor.actor, stage: r.stage } }, {}, () => this.repo.release(id), now);
    return this.get(id);
  }

  /** Returns the devices this rollout updated to the model each had before. */
  async rollback(actor: AuditActor, id: string): Promise<RolloutRow> {
    const r = this.require(id, 'roll back');
    await this.serialized(() => this.revert(r, actor, { kind: 'operator', actor: actor.actor, stage: r.stage }));
    return this.get(id);
  }

  /** Approves the rollout's model version (the four-eyes policy), so it may go beyond the canary. */
  async approve(actor: AuditActor, id: string): Promise<RolloutRow> {
    const r = this.get(id);
    approveModel(this.ctx, actor, this.modelOf(`${r.modelName}@${r.modelVersion}`));
    this.repo.addHistory(id, this.ctx.clock(), 'model_approved', { by: actor.actor });
    await this.evaluate(id);
    return this.get(id);
  }

  get(id: string): RolloutRow {
    const r = this.repo.get(id);
    if (!r) throw rolloutNotFound(id);
    return r;
  }

  // ---------------------------------------------------------------------------------------------
  // Reports and evaluation

  /** A device reported its deployment status: record it against the rollout it belongs to. */
  onReported(deviceId: string, status: DeploymentStatusT | null): void {
    if (!status) return;
    const rollback = ROLLBACK_ID.exec(status.deploymentId);
    const rolloutId = rollback ? rollback[1]! : status.deploymentId;
    const row = this.repo.device(rolloutId, deviceId);
    if (!row) return;
    const now = this.ctx.clock();
    let state = row.state;
    if (rollback) {
      if (row.state !== 'reverting' && row.state !== 'reverted') return;
      state = status.phase === 'committed' ? 'reverted' : 'reverting';
    } else {
      if (row.state === 'reverting' || row.state === 'reverted' || row.state === 'kept') return;
      state = status.phase === 'committed' ? 'committed' : status.phase === 'failed' || status.phase === 'rolled_back' ? 'failed' : 'assigned';
    }
    const reason = status.reason ?? null;
    if (state === row.state && status.phase === row.phase && reason === row.reason) return;
    this.repo.setDeviceState(rolloutId, deviceId, state, status.phase, reason, now);
    if (state !== row.state) this.ctx.bus.emit('rollout.device', { rolloutId, deviceId, state, reason });
    this.evaluateSoon(rolloutId);
  }

  /** Coalesces evaluations triggered by a burst of reports into one per rollout. */
  evaluateSoon(id: string): void {
    if (this.soon.has(id)) return;
    this.soon.add(id);
    setImmediate(() => {
      this.soon.delete(id);
      this.evaluate(id).catch((err) => this.ctx.logger.error({ err, rollout: id }, 'rollout evaluation failed'));
    });
  }

  /** The cron tick: every running or scheduled rollout, then devices joining finished cohorts. */
  async tick(): Promise<void> {
    for (const r of this.repo.inStates(['scheduled', 'running'])) await this.evaluate(r.id);
    await this.serialized(() => this.followJoiners());
    this.updateGauges();
  }

  evaluate(id: string): Promise<void> {
    return this.serialized(async () => {
      const r = this.repo.get(id);
      if (!r) return;
      await this.step(r);
    });
  }

  /** Lets the evaluation under way finish and refuses further ones (the hub is closing). */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.chain;
  }

  private serialized(fn: () => Promise<void>): Promise<void> {
    const run = this.chain.then(() => (this.stopped ? undefined : fn()));
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** One evaluation of a rollout; advances at most through every stage that is already done. */
  private async step(initial: RolloutRow): Promise<void> {
    let r = initial;
    // Each pass either returns or makes progress (devices told, a stage advanced); a stage whose
    // criteria are already met (a direct deployment, a zero bake) is left in the same evaluation.
    for (let guard = 0; guard <= 2 * r.spec.stages.length + 2; guard++) {
      const now = this.ctx.clock();
      if (r.state === 'scheduled') {
        if (r.spec.startAt !== null && now < r.spec.startAt) return;
        this.transition(r, SYSTEM_ACTOR, 'running', { state: 'running', stageStartedAt: now, waiting: null }, { scheduledFor: r.spec.startAt }, undefined, now);
        r = this.get(r.id);
      }
      if (r.state !== 'running') return;
      const stage = r.spec.stages[r.stage]!;
      const rows = this.markTimeouts(r, stage, now);
      const counts = countDevices(rows);
      const cohort = this.cohortOf(r, rows);
      const target = cumulativeTarget(r.spec.stages, r.stage, cohort.size);
      const judgement = judgeStage(stage, counts, target);

      if (judgement.breached) {
        await this.breach(r, 'failure_threshold', { failureShare: round(judgement.failureShare), threshold: stage.failureThreshold, failed: counts.failed, updated: counts.updated });
        return;
      }
      const gates = stage.gates && counts.committed > 0 ? this.evaluateGates(r, stage, rows, cohort) : null;
      if (gates) {
        if (JSON.stringify(gates) !== JSON.stringify(r.gates)) this.repo.update(r.id, { gates }, now);
        const tripped = gates.find((g) => g.status === 'breach');
        if (tripped) {
          await this.breach(r, tripped.gate, tripped);
          return;
        }
      }

      if (counts.updated < target) {
        if ((await this.assignMore(r, cohort, rows, target - counts.updated, now)) === 0) return;
        r = this.get(r.id);
        continue;
      }
      if (!judgement.healthy) {
        if (r.stageHealthyAt !== null) this.repo.update(r.id, { stageHealthyAt: null }, now);
        this.setWaiting(r, null, now);
        return;
      }
      if (r.stageHealthyAt === null) {
        this.transition(r, SYSTEM_ACTOR, 'stage_healthy', { stageHealthyAt: now, waiting: null }, { stage: r.stage, successShare: round(judgement.successShare), bakeMs: stage.bakeMs }, undefined, now);
        r = this.get(r.id);
      }
      if (now - r.stageHealthyAt! < stage.bakeMs) return;
      const last = r.stage === r.spec.stages.length - 1;
      if (last) {
        this.transition(r, SYSTEM_ACTOR, 'completed', { state: 'completed', finishedAt: now, waiting: null }, { updated: counts.updated, committed: counts.committed }, () => this.repo.release(r.id), now);
        this.ctx.logger.info({ rollout: r.id, updated: counts.updated }, 'rollout completed');
        return;
      }
      this.transition(r, SYSTEM_ACTOR, 'stage_advanced', { stage: r.stage + 1, stageStartedAt: now, stageHealthyAt: null, gates: null }, { from: r.stage, to: r.stage + 1 }, undefined, now);
      r = this.get(r.id);
    }
  }

  /** Devices told to change that have not reported a final phase within the stage's timeout. */
  private markTimeouts(r: RolloutRow, stage: StageSpec, now: number): RolloutDeviceRow[] {
    const rows = this.repo.devices(r.id);
    const late = rows.filter((d) => d.state === 'assigned' && now - d.assignedAt > stage.timeoutMs);
    if (late.length === 0) return rows;
    this.repo.transaction(() => {
      for (const d of late) this.repo.setDeviceState(r.id, d.deviceId, 'timed_out', d.phase, 'no final report within the stage timeout', now);
      this.repo.addHistory(r.id, now, 'timed_out', { stage: r.stage, devices: late.map((d) => d.deviceId).slice(0, 100), count: late.length });
      this.ctx.audit.append(SYSTEM_ACTOR, { action: 'rollout.timed_out', target: `rollout:${r.id}`, after: { stage: r.stage, count: late.length, devices: late.map((d) => d.deviceId).slice(0, 100) } });
    });
    this.announce(r.id, 'timed_out');
    return this.repo.devices(r.id);
  }

  /** Tells up to `wanted` more devices to change, unless the rollout must wait; returns how many it told. */
  private async assignMore(r: RolloutRow, cohort: Set<string>, rows: readonly RolloutDeviceRow[], wanted: number, now: number): Promise<number> {
    const wait = (waiting: Waiting | null) => {
      this.setWaiting(r, waiting, now);
      return 0;
    };
    if (r.spec.window) {
      const w = windowState(r.spec.window, now);
      if (!w.open) return wait({ reason: 'outside_window', opensAt: w.opensAt! });
    }
    let n = wanted;
    if (r.spec.devicesPerMinute !== null) {
      n = Math.min(n, r.spec.devicesPerMinute - this.repo.assignedSince(r.id, now - 60_000));
      if (n <= 0) return wait({ reason: 'rate_limited', perMinute: r.spec.devicesPerMinute });
    }
    const taken = new Set(rows.map((d) => d.deviceId));
    const claims = this.repo.activeClaims();
    const next = hashOrder(r.id, [...cohort].filter((id) => !taken.has(id) && (claims.get(id) ?? r.id) === r.id)).slice(0, n);
    if (next.length === 0) return wait(null);
    const model = this.modelOf(`${r.modelName}@${r.modelVersion}`);
    const shortfall = approvalShortfall(this.ctx, model, next);
    if (shortfall) return wait({ reason: 'approval_required', devices: shortfall.devices, canary: shortfall.canary });
    const assigned = this.assign(r, model, next, r.stage, true, now);
    this.setWaiting(r, null, now);
    await this.ctx.desired.publish(assigned);
    return assigned.length;
  }

  /** Tells `deviceIds` to change to the rollout's model, recording what each had before; returns those it could claim. */
  private assign(r: RolloutRow, model: ModelVersion, deviceIds: readonly string[], stage: number, active: boolean, now: number): string[] {
    const assigned: string[] = [];
    this.repo.transaction(() => {
      for (const deviceId of deviceIds) {
        const previous = this.ctx.deployments.desiredHead(deviceId);
        const previousModel = previous ? this.ctx.deployments.modelOf(previous.deploymentId) : null;
        const claimed = this.repo.addDevice(
          {
            rolloutId: r.id,
            deviceId,
            stage,
            state: 'assigned',
            previousModel: previous?.digest && previousModel ? formatModelRef(previousModel) : null,
            previousDigest: previous?.digest ?? null,
            assignedAt: now,
          },
          active,
        );
        if (!claimed) continue;
        const row = signDesiredFor(this.ctx, deviceId, r.id, model.bundle);
        this.ctx.deployments.saveDesired(row, now);
        this.ctx.deployments.addTarget(r.id, deviceId, row.seq);
        assigned.push(deviceId);
      }
      if (assigned.length === 0) return;
      this.repo.addHistory(r.id, now, 'assigned', { stage, count: assigned.length, devices: assigned.slice(0, 100) });
      this.ctx.audit.append(SYSTEM_ACTOR, { action: 'rollout.assign', target: `rollout:${r.id}`, after: { stage, model: formatModelRef(model), count: assigned.length, devices: assigned.slice(0, 100) } });
    });
    if (assigned.length > 0) this.announce(r.id, 'assigned');
    return assigned;
  }

  private async breach(r: RolloutRow, cause: string, detail: unknown): Promise<void> {
    const reason: StopReason = { kind: 'breach', stage: r.stage, cause, detail };
    this.ctx.metrics.rolloutBreaches.inc({ cause });
    this.ctx.logger.warn({ rollout: r.id, stage: r.stage, cause, detail, policy: r.spec.breachPolicy }, 'rollout breached its thresholds');
    if (r.spec.breachPolicy === 'rollback') {
      await this.revert(r, SYSTEM_ACTOR, reason);
      return;
    }
    this.transition(r, SYSTEM_ACTOR, 'paused', { state: 'paused', stopReason: reason, waiting: null }, { cause, detail });
  }

  /**
   * Sends every device this rollout updated (and whose current document is still this rollout's)
   * a new document, with a higher seq, naming the model it had before. A device that had no
   * model before keeps this one (`kept`): a device is never told to run nothing.
   */
  private async revert(r: RolloutRow, actor: AuditActor, reason: StopReason): Promise<void> {
    const now = this.ctx.clock();
    const rows = this.repo.devices(r.id).filter((d) => d.state !== 'reverting' && d.state !== 'reverted' && d.state !== 'kept');
    const told: string[] = [];
    let kept = 0;
    const ids = new Map<string, string>();
    this.repo.transaction(() => {
      for (const d of rows) {
        if (this.ctx.deployments.desiredHead(d.deviceId)?.deploymentId !== r.id) continue;
        const previous = d.previousModel ? this.ctx.registry.get(parseModelRef(d.previousModel).name, parseModelRef(d.previousModel).version) : null;
        const why = !d.previousModel
          ? 'no previous model to return to'
          : !previous
            ? `previous model ${d.previousModel} is no longer in the registry`
            : previous.releaseCounter < this.ctx.keys.securityFloor
              ? `previous model ${d.previousModel} is below the security floor`
              : null;
        if (why || !previous) {
          this.repo.setDeviceState(r.id, d.deviceId, 'kept', d.phase, why, now);
          kept++;
          continue;
        }
        let deploymentId = ids.get(d.previousModel!);
        if (!deploymentId) {
          deploymentId = `${r.id}-rb-${ids.size + 1}`;
          ids.set(d.previousModel!, deploymentId);
          this.ctx.deployments.insertDeployment({ id: deploymentId, modelName: previous.name, modelVersion: previous.version, digest: previous.digest, target: r.spec.target, createdAt: now });
        }
        const doc = signDesiredFor(this.ctx, d.deviceId, deploymentId, previous.bundle);
        this.ctx.deployments.saveDesired(doc, now);
        this.ctx.deployments.addTarget(deploymentId, d.deviceId, doc.seq);
        this.repo.setDeviceState(r.id, d.deviceId, 'reverting', null, null, now);
        told.push(d.deviceId);
      }
      const change: RolloutChange = { state: 'rolled_back', finishedAt: now, waiting: null, stopReason: reason };
      this.repo.update(r.id, change, now);
      this.repo.release(r.id);
      const detail = { reverting: told.length, kept, previousModels: [...ids.keys()], reason };
      this.repo.addHistory(r.id, now, 'rolled_back', detail);
      this.ctx.audit.append(actor, { action: 'rollout.rolled_back', target: `rollout:${r.id}`, before: { state: r.state, stage: r.stage }, after: { state: 'rolled_back', ...detail } });
    });
    this.announce(r.id, 'rolled_back');
    this.ctx.metrics.rolloutTransitions.inc({ kind: 'rolled_back' });
    this.ctx.logger.warn({ rollout: r.id, reverting: told.length, kept }, 'rollout rolled back');
    await this.ctx.desired.publish(told);
  }

  /**
   * Devices that joined the cohort of a completed rollout: each device not held by an active
   * rollout follows the newest rollout that targets it, if that one completed and the device
   * does not already run (or was not already told) its model.
   */
  private async followJoiners(): Promise<void> {
    const recent = this.repo.list({ states: ['completed', 'aborted', 'rolled_back'], limit: 200, includeDirect: true });
    const followers = recent.filter((r) => r.state === 'completed' && 'selector' in r.spec.target);
    if (followers.length === 0) return;
    const claims = this.repo.activeClaims();
    const active = this.repo.inStates(ACTIVE_STATES);
    const members = new Map<string, Set<string>>();
    const joiners = new Map<string, string[]>();
    for (const device of this.ctx.devices.list()) {
      if (claims.has(device.id)) continue;
      if (active.some((a) => this.targets(a, device.id, device.labels))) continue;
      const newest = recent.find((r) => this.targets(r, device.id, device.labels));
      if (!newest || newest.state !== 'completed' || !('selector' in newest.spec.target)) continue;
      if (this.ctx.deployments.desiredHead(device.id)?.digest === newest.digest) continue;
      let seen = members.get(newest.id);
      if (!seen) members.set(newest.id, (seen = new Set(this.repo.devices(newest.id).map((d) => d.deviceId))));
      if (seen.has(device.id)) continue;
      joiners.set(newest.id, [...(joiners.get(newest.id) ?? []), device.id]);
    }
    const now = this.ctx.clock();
    for (const [id, deviceIds] of joiners) {
      const r = this.get(id);
      const model = this.modelOf(`${r.modelName}@${r.modelVersion}`);
      if (approvalShortfall(this.ctx, model, deviceIds) || model.releaseCounter < this.ctx.keys.securityFloor) continue;
      if (r.spec.window && !windowState(r.spec.window, now).open) continue;
      const assigned = this.assign(r, model, deviceIds, r.spec.stages.length - 1, false, now);
      if (assigned.length > 0) this.ctx.logger.info({ rollout: id, devices: assigned.length }, 'devices joined the cohort of a completed rollout');
      await this.ctx.desired.publish(assigned);
    }
  }

  private evaluateGates(r: RolloutRow, stage: StageSpec, rows: readonly RolloutDeviceRow[], cohort: Set<string>): GateResult[] {
    const since = r.stageStartedAt ?? r.startedAt ?? r.createdAt;
    const updated = rows.filter((d) => d.state === 'committed').map((d) => d.deviceId);
    const touched = new Set(rows.map((d) => d.deviceId));
    const control = [...cohort].filter((id) => !touched.has(id));
    const group = (ids: readonly string[], digest: string | null): GroupData => {
      const data: GroupData = { summaries: [], latestDrift: [], alerts: 0 };
      for (const id of ids) {
        const summaries = this.ctx.telemetry.range(id, since, Number.MAX_SAFE_INTEGER, 1000).filter((t) => digest === null || t.active?.digest === digest);
        data.summaries.push(...summaries);
        const latest = summaries.map(driftOf).filter((v): v is number => v !== null).at(-1);
        if (latest !== undefined) data.latestDrift.push(latest);
        data.alerts += this.ctx.devices.countEvents(id, 'maintenance_alert', since);
      }
      return data;
    };
    return evaluateGates(stage.gates!, group(updated, r.digest), group(control, null));
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers

  /** `now`: the time the change is about (its history row carries the same time as the columns it sets). */
  private transition(r: RolloutRow, actor: AuditActor, kind: string, change: RolloutChange, detail: Record<string, unknown>, also?: () => void, now = this.ctx.clock()): void {
    this.repo.transaction(() => {
      this.repo.update(r.id, change, now);
      this.repo.addHistory(r.id, now, kind, { ...detail, ...(change.state ? { state: change.state } : {}), stage: change.stage ?? r.stage });
      also?.();
      this.ctx.audit.append(actor, {
        action: `rollout.${kind}`,
        target: `rollout:${r.id}`,
        before: { state: r.state, stage: r.stage },
        after: { state: change.state ?? r.state, stage: change.stage ?? r.stage, ...detail, ...(change.stopReason ? { stopReason: change.stopReason } : {}) },
      });
    });
    this.ctx.metrics.rolloutTransitions.inc({ kind });
    this.announce(r.id, kind);
  }

  private setWaiting(r: RolloutRow, waiting: Waiting | null, now: number): void {
    if (JSON.stringify(waiting) === JSON.stringify(r.waiting)) return;
    this.repo.update(r.id, { waiting }, now);
    this.announce(r.id, waiting ? `waiting:${waiting.reason}` : 'progressing');
  }

  private announce(rolloutId: string, transition: string): void {
    const r = this.repo.get(rolloutId);
    if (r) this.ctx.bus.emit('rollout.changed', { rolloutId, state: r.state, stage: r.stage, transition });
  }

  private require(id: string, action: keyof typeof ALLOWED | 'roll back'): RolloutRow {
    const r = this.get(id);
    const key = action === 'roll back' ? 'rollback' : action;
    if (!ALLOWED[key].includes(r.state)) throw rolloutState(id, r.state, action);
    return r;
  }

  private modelOf(ref: string): ModelVersion {
    let parsed;
    try {
      parsed = parseModelRef(ref);
    } catch {
      throw rolloutInvalid('model', `${JSON.stringify(ref)} is not of the form name@version`);
    }
    const model = this.ctx.registry.get(parsed.name, parsed.version);
    if (!model) throw rolloutInvalid('model', `${ref} is not in the registry (cairn model list)`);
    return model;
  }

  private selectorOf(r: Pick<RolloutRow, 'id' | 'spec'>): Selector | null {
    if (!('selector' in r.spec.target)) return null;
    let s = this.selectors.get(r.id);
    if (!s) this.selectors.set(r.id, (s = parseSelectorParam(r.spec.target.selector)));
    return s;
  }

  /** Whether a rollout's target names this device (by id or by its labels now). */
  private targets(r: RolloutRow, deviceId: string, labels: Record<string, string>): boolean {
    const selector = this.selectorOf(r);
    return selector ? matchesSelector(selector, labels) : (r.spec.target as { deviceIds: string[] }).deviceIds.includes(deviceId);
  }

  /** The devices a spec targets now; unknown listed ids are refused. */
  private resolveTarget(spec: RolloutSpec): string[] {
    if ('deviceIds' in spec.target) {
      const unknown = spec.target.deviceIds.filter((id) => !this.ctx.devices.get(id));
      if (unknown.length > 0) throw Errors.deviceNotFound(unknown);
      return spec.target.deviceIds;
    }
    let selector: Selector;
    try {
      selector = parseSelectorParam(spec.target.selector);
    } catch (err) {
      throw rolloutInvalid('selector', (err as Error).message);
    }
    return this.ctx.devices.list().filter((d) => matchesSelector(selector, d.labels)).map((d) => d.id);
  }

  private assertNoConflict(cohort: readonly string[]): void {
    const claims = this.repo.activeClaims();
    const devices = new Map(this.ctx.devices.list().map((d) => [d.id, d.labels]));
    for (const other of this.repo.inStates(ACTIVE_STATES)) {
      const overlap = cohort.filter((id) => claims.get(id) === other.id || this.targets(other, id, devices.get(id) ?? {}));
      if (overlap.length > 0) throw rolloutConflict(other, overlap);
    }
  }

  /**
   * The rollout's cohort now: devices its target names, plus every device it already updated
   * (they stay counted if their labels change), minus devices another active rollout holds.
   * The views use it too, so the targets they show are the ones the engine works to.
   */
  cohortOf(r: RolloutRow, rows: readonly RolloutDeviceRow[]): Set<string> {
    const claims = this.repo.activeClaims();
    const cohort = new Set(rows.map((d) => d.deviceId));
    const selector = this.selectorOf(r);
    if (selector) {
      for (const d of this.ctx.devices.list()) if (matchesSelector(selector, d.labels) && (claims.get(d.id) ?? r.id) === r.id) cohort.add(d.id);
    } else {
      for (const id of (r.spec.target as { deviceIds: string[] }).deviceIds) if (this.ctx.devices.get(id) && (claims.get(id) ?? r.id) === r.id) cohort.add(id);
    }
    return cohort;
  }

  private updateGauges(): void {
    const counts = new Map<string, number>();
    for (const r of this.repo.inStates(ACTIVE_STATES)) counts.set(r.state, (counts.get(r.state) ?? 0) + 1);
    for (const state of ACTIVE_STATES) this.ctx.metrics.rollouts.set({ state }, counts.get(state) ?? 0);
  }
}

function summarizeTarget(spec: RolloutSpec): Record<string, unknown> {
  return 'selector' in spec.target ? { selector: spec.target.selector } : { deviceIds: spec.target.deviceIds.slice(0, 100), devices: spec.target.deviceIds.length };
}

const round = (v: number) => Math.round(v * 100) / 100;
