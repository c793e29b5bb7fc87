/**
 * The alert and work-order lifecycle: raising (open, or a recurrence of the unresolved alert of
 * the same device, cause and key), automatic resolution, operator actions, and the work order a
 * maintenance alert opens.
 *
 * Every change is one SQLite transaction; its `alert.changed` / `workorder.changed` bus events
 * are emitted after the commit (listeners — webhooks, the live stream — see only what is
 * stored), and the open-alert gauge is refreshed. Operator actions are audited in the
 * transaction of their change; a work order opened by a device's alert is audited as `system`.
 * Automatic alert transitions are not audited: the alert row itself records them.
 */
import type { MaintenanceAlertT } from '@cairn/shared';
import type { HubContext } from '../../infra/context.js';
import { Errors, HubError } from '../../infra/errors.js';
import { SYSTEM_ACTOR, type AuditActor } from '../audit/audit-log.js';
import { ALERT_CAUSES, type Alert, type AlertCause, type AlertInput, type AlertsRepository, type WorkOrder } from './alerts.repository.js';
import { alertView, workOrderView } from './alert-view.js';
import { CLOSED_DRIFT_STATE } from './drift-hysteresis.js';

type AlertChange = 'opened' | 'updated' | 'acknowledged' | 'resolved';
type WorkOrderChange = 'opened' | 'acknowledged' | 'done';
type Announcement = { alert: Alert; change: AlertChange } | { workOrder: WorkOrder; change: WorkOrderChange };

/** Who resolved an alert whose condition cleared by itself. */
export const AUTO = 'auto';

/** The username the views show for an audit actor (`user:otto` → `otto`). */
const username = (who: AuditActor): string => (who.actor.startsWith('user:') ? who.actor.slice('user:'.length) : who.actor);

export class AlertsService {
  private pending: Announcement[] = [];
  private depth = 0;

  constructor(
    private readonly ctx: HubContext,
    readonly repo: AlertsRepository,
  ) {}

  /**
   * Runs `fn` in one transaction (nested calls join the outer one) and announces its changes
   * after the outermost commit; nothing is announced when it throws.
   */
  run<T>(fn: () => T): T {
    this.depth++;
    let result: T;
    try {
      result = this.ctx.db.transaction(fn)();
    } catch (err) {
      if (this.depth === 1) {
        this.pending = [];
        // A refusal (HubError) is thrown before anything is written; anything else may have left memory ahead of the tables.
        if (!(err instanceof HubError)) this.repo.resync();
      }
      throw err;
    } finally {
      this.depth--;
    }
    if (this.depth === 0) this.flush();
    return result;
  }

  /** Opens an alert, or records a recurrence of the unresolved one with the same device, cause and key. */
  raise(input: AlertInput): { alert: Alert; change: 'opened' | 'updated' } {
    return this.run(() => {
      const now = this.ctx.clock();
      const existing = this.repo.unresolved(input.deviceId, input.cause, input.key);
      const result = existing ? { alert: this.repo.recur(existing.id, input, now), change: 'updated' as const } : { alert: this.repo.insert(input, now), change: 'opened' as const };
      this.pending.push(result);
      return result;
    });
  }

  /** Resolves the unresolved alert of (device, cause, key) because its condition cleared; no-op when there is none. */
  resolveAuto(deviceId: string, cause: AlertCause, key = ''): Alert | null {
    if (!this.repo.hasUnresolved(deviceId, cause, key)) return null; // the common case, from memory
    return this.run(() => {
      const existing = this.repo.unresolved(deviceId, cause, key);
      if (!existing) return null;
      return this.markResolved(existing, AUTO);
    });
  }

  /**
   * A device's maintenance alert: raises the alert of (device, maintenance, fault class) and, when
   * that opens a new one, its work order (a recurrence adds evidence to the alert, not another
   * work order).
   */
  raiseMaintenance(deviceId: string, m: MaintenanceAlertT): Alert {
    return this.run(() => {
      const { alert, change } = this.raise({
        deviceId,
        cause: 'maintenance',
        key: m.faultClass,
        severity: 'critical',
        summary: `${m.faultClass} predicted on ${m.machine} (confidence ${m.confidence.toFixed(2)})`,
        details: { machine: m.machine, faultClass: m.faultClass, confidence: m.confidence, rule: m.rule, windows: m.windows },
        model: { name: m.model.name, version: m.model.version },
      });
      if (change !== 'opened') return alert;
      const workOrder = this.repo.insertWorkOrder(
        { alertId: alert.id, deviceId, machine: m.machine, faultClass: m.faultClass, confidence: m.confidence, evidence: { rule: m.rule, windows: m.windows }, model: m.model },
        this.ctx.clock(),
      );
      this.repo.linkWorkOrder(alert.id, workOrder.id);
      this.ctx.audit.append(SYSTEM_ACTOR, { action: 'workorder.open', target: `work-order:${workOrder.id}`, after: { alertId: alert.id, deviceId, machine: m.machine, faultClass: m.faultClass } });
      this.pending.push({ workOrder, change: 'opened' });
      const linked = this.repo.get(alert.id)!;
      // The alert's own announcement should carry the work order's id.
      for (const p of this.pending) if ('alert' in p && p.alert.id === alert.id) p.alert = linked;
      return linked;
    });
  }

  acknowledge(who: AuditActor, id: string): Alert {
    return this.run(() => {
      const alert = this.repo.get(id);
      if (!alert) throw Errors.alertNotFound(id);
      if (alert.state !== 'open') throw Errors.alertState(id, alert.state, 'acknowledged');
      this.repo.acknowledge(id, username(who), this.ctx.clock());
      this.ctx.audit.append(who, { action: 'alert.acknowledge', target: `alert:${id}`, before: { state: alert.state }, after: { state: 'acknowledged' } });
      const after = this.repo.get(id)!;
      this.pending.push({ alert: after, change: 'acknowledged' });
      return after;
    });
  }

  /** An operator resolves an alert; for drift this also closes the hysteresis, so the drift must persist again to reopen one. */
  resolve(who: AuditActor, id: string): Alert {
    return this.run(() => {
      const alert = this.repo.get(id);
      if (!alert) throw Errors.alertNotFound(id);
      if (alert.state === 'resolved') throw Errors.alertState(id, alert.state, 'resolved');
      const after = this.markResolved(alert, username(who));
      this.ctx.audit.append(who, { action: 'alert.resolve', target: `alert:${id}`, before: { state: alert.state }, after: { state: 'resolved' } });
      return after;
    });
  }

  acknowledgeWorkOrder(who: AuditActor, id: string): WorkOrder {
    return this.run(() => {
      const wo = this.repo.getWorkOrder(id);
      if (!wo) throw Errors.workOrderNotFound(id);
      if (wo.state !== 'open') throw Errors.workOrderState(id, wo.state, 'acknowledged');
      this.repo.acknowledgeWorkOrder(id, username(who), this.ctx.clock());
      this.ctx.audit.append(who, { action: 'workorder.acknowledge', target: `work-order:${id}`, before: { state: wo.state }, after: { state: 'acknowledged' } });
      const after = this.repo.getWorkOrder(id)!;
      this.pending.push({ workOrder: after, change: 'acknowledged' });
      return after;
    });
  }

  /** The work is done: the work order closes and its maintenance alert, if still unresolved, is resolved by the same operator. */
  finishWorkOrder(who: AuditActor, id: string): WorkOrder {
    return this.run(() => {
      const wo = this.repo.getWorkOrder(id);
      if (!wo) throw Errors.workOrderNotFound(id);
      if (wo.state === 'done') throw Errors.workOrderState(id, wo.state, 'done');
      this.repo.finishWorkOrder(id, username(who), this.ctx.clock());
      this.ctx.audit.append(who, { action: 'workorder.done', target: `work-order:${id}`, before: { state: wo.state }, after: { state: 'done' } });
      const after = this.repo.getWorkOrder(id)!;
      this.pending.push({ workOrder: after, change: 'done' });
      const alert = this.repo.get(wo.alertId);
      if (alert && alert.state !== 'resolved') this.markResolved(alert, username(who));
      return after;
    });
  }

  /** Sets the open-alert gauge from the table (after every change, and at start). */
  refreshGauge(): void {
    const counts = this.repo.countUnresolvedByCause();
    for (const cause of ALERT_CAUSES) this.ctx.metrics.alertsOpen.set({ cause }, counts.get(cause) ?? 0);
  }

  private markResolved(alert: Alert, by: string): Alert {
    this.repo.resolve(alert, by, this.ctx.clock());
    if (alert.cause === 'drift') this.repo.saveDriftState(alert.deviceId, CLOSED_DRIFT_STATE);
    const after = this.repo.get(alert.id)!;
    this.pending.push({ alert: after, change: 'resolved' });
    return after;
  }

  private flush(): void {
    const announcements = this.pending;
    this.pending = [];
    if (announcements.length === 0) return;
    this.refreshGauge();
    for (const a of announcements) {
      // A listener that throws must not keep the other announcements from the others: each is stored already.
      try {
        if ('alert' in a) {
          if (a.change === 'opened') this.ctx.metrics.alertsOpened.inc({ cause: a.alert.cause });
          this.ctx.logger.info({ alertId: a.alert.id, deviceId: a.alert.deviceId, cause: a.alert.cause, change: a.change }, `alert ${a.change}`);
          this.ctx.bus.emit('alert.changed', { change: a.change, alert: alertView(a.alert) });
        } else {
          if (a.change === 'opened') this.ctx.metrics.workOrdersOpened.inc();
          this.ctx.logger.info({ workOrderId: a.workOrder.id, deviceId: a.workOrder.deviceId, change: a.change }, `work order ${a.change}`);
          this.ctx.bus.emit('workorder.changed', { change: a.change, workOrder: workOrderView(a.workOrder) });
        }
      } catch (err) {
        this.ctx.logger.error({ err }, 'a listener of alert or work-order changes failed');
      }
    }
  }
}
