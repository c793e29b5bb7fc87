/**
 * What the API, the bus (`alert.changed`, `workorder.changed`), webhooks and the console show of
 * alerts and work orders: the contract's views, times as ISO 8601 strings.
 */
import { Type } from 'typebox';
import { iso, IsoTime } from '../../infra/api-schemas.js';
import { ALERT_CAUSES, ALERT_STATES, WORK_ORDER_STATES, type Alert, type WorkOrder } from './alerts.repository.js';

const ModelRefView = Type.Object({ name: Type.String(), version: Type.String() });

export const AlertView = Type.Object({
  id: Type.String(),
  deviceId: Type.String(),
  cause: Type.Enum(ALERT_CAUSES),
  severity: Type.Enum(['warning', 'critical']),
  state: Type.Enum(ALERT_STATES),
  summary: Type.String(),
  details: Type.Record(Type.String(), Type.Unknown()),
  model: Type.Union([ModelRefView, Type.Null()]),
  openedAt: Type.String({ format: 'date-time' }),
  lastSeenAt: Type.String({ format: 'date-time' }),
  occurrences: Type.Integer(),
  acknowledgedAt: IsoTime,
  acknowledgedBy: Type.Union([Type.String(), Type.Null()]),
  resolvedAt: IsoTime,
  /** `auto` when the condition cleared, otherwise the operator's username. */
  resolvedBy: Type.Union([Type.String(), Type.Null()]),
  workOrderId: Type.Union([Type.String(), Type.Null()]),
});

export const WorkOrderView = Type.Object({
  id: Type.String(),
  alertId: Type.String(),
  deviceId: Type.String(),
  machine: Type.String(),
  faultClass: Type.String(),
  confidence: Type.Number(),
  evidence: Type.Object({ rule: Type.String(), windows: Type.Array(Type.Object({ ts: Type.Integer(), probability: Type.Number() })) }),
  model: Type.Object({ name: Type.String(), version: Type.String(), digest: Type.String() }),
  state: Type.Enum(WORK_ORDER_STATES),
  openedAt: Type.String({ format: 'date-time' }),
  acknowledgedAt: IsoTime,
  acknowledgedBy: Type.Union([Type.String(), Type.Null()]),
  doneAt: IsoTime,
  doneBy: Type.Union([Type.String(), Type.Null()]),
});

export function alertView(a: Alert) {
  return {
    id: a.id,
    deviceId: a.deviceId,
    cause: a.cause,
    severity: a.severity,
    state: a.state,
    summary: a.summary,
    details: a.details,
    model: a.model,
    openedAt: iso(a.openedAt)!,
    lastSeenAt: iso(a.lastSeenAt)!,
    occurrences: a.occurrences,
    acknowledgedAt: iso(a.acknowledgedAt),
    acknowledgedBy: a.acknowledgedBy,
    resolvedAt: iso(a.resolvedAt),
    resolvedBy: a.resolvedBy,
    workOrderId: a.workOrderId,
  };
}

export function workOrderView(w: WorkOrder) {
  return {
    id: w.id,
    alertId: w.alertId,
    deviceId: w.deviceId,
    machine: w.machine,
    faultClass: w.faultClass,
    confidence: w.confidence,
    evidence: w.evidence,
    model: w.model,
    state: w.state,
    openedAt: iso(w.openedAt)!,
    acknowledgedAt: iso(w.acknowledgedAt),
    acknowledgedBy: w.acknowledgedBy,
    doneAt: iso(w.doneAt),
    doneBy: w.doneBy,
  };
}
