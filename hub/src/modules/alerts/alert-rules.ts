/**
 * The five alert causes: which facts raise and which resolve each one. Facts come from the bus
 * (`telemetry.stored`, `device.presence`, `device.reported`, `device.event`) and from the
 * clock-driven `check` (offline, silence); other modules are read only through their
 * repositories on the context. All state a rule keeps between facts is in SQLite (drift
 * hysteresis, the last telemetry seq and interval), so a hub restart continues where it was.
 *
 * - drift: the drift hysteresis (`drift-hysteresis.ts`) over each summary's drift status.
 * - offline: offline for `offlineAfterSeconds`, measured from the later of the device's last
 *   sign of life and the hub's start (devices cannot report while the hub is down, so a restart
 *   must not raise an alert for every device that has not reconnected yet). Resolved by its next
 *   birth. An episode an operator resolved by hand is not raised again until the device has been
 *   back and gone again.
 * - rollback: the device reports a deployment `rolled_back`; resolved when it reports a later
 *   deployment (higher desired seq) committed.
 * - ingest_gap: a telemetry seq gap (summaries lost on the way, e.g. an outbox that dropped its
 *   oldest), or an online device silent for `ingestGapIntervals` of its own interval; resolved by
 *   the next summary that follows its predecessor's seq. Late, out-of-order summaries are ignored.
 *   The last seq and the silence clock live in memory (telemetry arrives at fleet rates): after a
 *   hub restart the first summary of each device re-anchors the seq, so a gap across a restart is
 *   not reported, and silence counts from the device's birth. Each device's interval is stored,
 *   so a device that reconnects and sends nothing is still found silent.
 * - maintenance: each `maintenance_alert` event, deduplicated per fault class, opens a work order.
 */
import type { DeploymentStatusT, DeviceEventT, TelemetryT } from '@cairn/shared';
import type { HubContext } from '../../infra/context.js';
import type { AlertsService } from './alerts.service.js';
import type { ModelRef } from './alerts.repository.js';
import { CLOSED_DRIFT_STATE, stepDrift, type DriftStep } from './drift-hysteresis.js';

interface IngestWatch {
  /** null until the first summary since the hub started. */
  lastSeq: number | null;
  intervalMs: number;
  /** Hub time of the last summary, or of the device's last birth if later: silence is measured from here. */
  since: number;
}

export class AlertRules {
  private readonly startedAt: number;
  private readonly watches = new Map<string, IngestWatch>();

  constructor(
    private readonly ctx: HubContext,
    private readonly alerts: AlertsService,
  ) {
    this.startedAt = ctx.clock();
    for (const [deviceId, intervalMs] of alerts.repo.ingestIntervals()) this.watches.set(deviceId, { lastSeq: null, intervalMs, since: this.startedAt });
  }

  private get repo() {
    return this.alerts.repo;
  }

  /** Runs once per stored summary: memory only, unless an alert, the interval or the hysteresis state changes. */
  onTelemetry(deviceId: string, t: TelemetryT): void {
    const watch = this.watches.get(deviceId);
    if (watch?.lastSeq != null && t.seq <= watch.lastSeq) return; // late: its gap was reported, its drift is stale
    const missing = watch?.lastSeq != null ? t.seq - watch.lastSeq - 1 : 0;
    const intervalChanged = watch?.intervalMs !== t.intervalMs;
    this.watches.set(deviceId, { lastSeq: t.seq, intervalMs: t.intervalMs, since: this.ctx.clock() });
    const before = t.drift ? (this.repo.driftState(deviceId) ?? CLOSED_DRIFT_STATE) : null;
    const { driftOpenAfter, driftResolveAfter } = this.ctx.config.alerts;
    const step = t.drift && before ? stepDrift(before, t.drift.status, { openAfter: driftOpenAfter, resolveAfter: driftResolveAfter }) : null;
    if (step && step.transition === null) this.repo.saveDriftState(deviceId, step.state); // a streak moved: memory, flushed by check
    if (missing === 0 && !intervalChanged && !step?.transition && !this.repo.hasUnresolved(deviceId, 'ingest_gap')) return;
    this.alerts.run(() => {
      if (intervalChanged) this.repo.saveIngestInterval(deviceId, t.intervalMs);
      if (missing > 0) this.raiseSeqGap(deviceId, t, missing);
      else this.alerts.resolveAuto(deviceId, 'ingest_gap');
      if (step?.transition) this.drift(deviceId, t, step);
    });
  }

  onPresence(deviceId: string, online: boolean): void {
    if (!online) return; // how long it stays away is the clock's business (check)
    const watch = this.watches.get(deviceId);
    if (watch) watch.since = Math.max(watch.since, this.ctx.clock());
    this.alerts.resolveAuto(deviceId, 'offline');
  }

  onReported(deviceId: string, deployment: DeploymentStatusT | null): void {
    if (!deployment) return;
    if (deployment.phase === 'rolled_back') {
      // The device re-reports the same state (reconnects, other changes): not a recurrence, and
      // not a new alert either when an operator already resolved the one for this rollback.
      const latest = this.repo.latest(deviceId, 'rollback');
      if (latest && latest.details['deploymentId'] === deployment.deploymentId && latest.details['seq'] === deployment.seq) return;
      const model = deployment.digest ? this.modelByDigest(deployment.digest) : null;
      this.alerts.raise({
        deviceId,
        cause: 'rollback',
        severity: 'warning',
        summary: `rolled back ${model ? `${model.name}@${model.version}` : 'a deployment'} (${deployment.deploymentId}): ${deployment.reason ?? 'no reason given'}`,
        details: { deploymentId: deployment.deploymentId, seq: deployment.seq, digest: deployment.digest, reason: deployment.reason ?? null, message: deployment.message ?? null },
        model,
      });
    } else if (deployment.phase === 'committed' && this.repo.hasUnresolved(deviceId, 'rollback')) {
      const existing = this.repo.unresolved(deviceId, 'rollback');
      if (existing && deployment.seq > Number(existing.details['seq'])) this.alerts.resolveAuto(deviceId, 'rollback');
    }
  }

  onEvent(deviceId: string, event: DeviceEventT): void {
    // The devices module drops a maintenance_alert without its alert section (counted there).
    if (event.type !== 'maintenance_alert' || !event.alert) return;
    this.alerts.raiseMaintenance(deviceId, event.alert);
  }

  /** The clock-driven causes: devices offline too long, online devices silent too long. */
  check(): void {
    const now = this.ctx.clock();
    const devices = new Map(this.ctx.devices.list().map((d) => [d.id, d]));
    const { offlineAfterSeconds, ingestGapIntervals } = this.ctx.config.alerts;
    for (const alert of this.repo.unresolvedOf('offline')) {
      if (devices.get(alert.deviceId)?.online) this.alerts.resolveAuto(alert.deviceId, 'offline');
    }
    for (const d of devices.values()) {
      if (d.online || d.lastSeenAt === null) continue; // never seen: enrolled, not yet installed
      const awayFor = now - Math.max(d.lastSeenAt, this.startedAt);
      if (awayFor < offlineAfterSeconds * 1000 || this.repo.hasUnresolved(d.id, 'offline')) continue;
      if (this.repo.latest(d.id, 'offline')?.details['since'] === d.lastSeenAt) continue; // this episode was resolved by hand
      this.alerts.raise({
        deviceId: d.id,
        cause: 'offline',
        severity: 'critical',
        summary: `offline since ${new Date(d.lastSeenAt).toISOString()}`,
        details: { since: d.lastSeenAt, thresholdSeconds: offlineAfterSeconds },
        model: activeModel(d.reported?.active),
      });
    }
    for (const [deviceId, watch] of this.watches) {
      const device = devices.get(deviceId);
      if (!device?.online) continue;
      const silentFor = now - watch.since;
      if (silentFor < ingestGapIntervals * watch.intervalMs || this.repo.hasUnresolved(deviceId, 'ingest_gap')) continue;
      if (this.repo.latest(deviceId, 'ingest_gap')?.details['since'] === watch.since) continue; // this silence was resolved by hand
      this.alerts.raise({
        deviceId,
        cause: 'ingest_gap',
        severity: 'warning',
        summary: `online but no telemetry for ${Math.round(silentFor / 1000)} s (${Math.floor(silentFor / watch.intervalMs)} intervals)`,
        details: { kind: 'silent', since: watch.since, lastSeq: watch.lastSeq, intervalMs: watch.intervalMs, silentForMs: silentFor },
        model: activeModel(device.reported?.active),
      });
    }
  }

  private raiseSeqGap(deviceId: string, t: TelemetryT, missing: number): void {
    this.alerts.raise({
      deviceId,
      cause: 'ingest_gap',
      severity: 'warning',
      summary: `${missing} telemetry summar${missing === 1 ? 'y' : 'ies'} missing (seq ${t.seq - missing}…${t.seq - 1})`,
      details: { kind: 'seq_gap', afterSeq: t.seq - missing - 1, nextSeq: t.seq, missing },
      model: activeModel(t.active),
    });
  }

  private drift(deviceId: string, t: TelemetryT, step: DriftStep): void {
    const drift = t.drift!;
    const { driftOpenAfter } = this.ctx.config.alerts;
    this.repo.saveDriftState(deviceId, step.state);
    if (step.transition === 'open') {
      const worst = Math.max(drift.predictionPsi ?? 0, drift.maxFeaturePsi ?? 0);
      this.alerts.raise({
        deviceId,
        cause: 'drift',
        severity: 'warning',
        summary: `data drift: PSI ${worst.toFixed(3)}${drift.maxFeature && (drift.maxFeaturePsi ?? 0) >= (drift.predictionPsi ?? 0) ? ` on ${drift.maxFeature}` : ' on predictions'} for ${driftOpenAfter} summaries`,
        details: { predictionPsi: drift.predictionPsi, maxFeaturePsi: drift.maxFeaturePsi, maxFeature: drift.maxFeature, windowMs: drift.windowMs, samples: drift.samples, seq: t.seq },
        model: activeModel(t.active),
      });
    } else if (step.transition === 'resolve') {
      this.alerts.resolveAuto(deviceId, 'drift');
    }
  }

  private modelByDigest(digest: string): ModelRef | null {
    const m = this.ctx.registry.list().find((v) => v.digest === digest);
    return m ? { name: m.name, version: m.version } : null;
  }
}

const activeModel = (active: { name: string; version: string } | null | undefined): ModelRef | null => (active ? { name: active.name, version: active.version } : null);
