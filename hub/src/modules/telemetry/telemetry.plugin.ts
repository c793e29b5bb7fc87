/**
 * Telemetry module: batched, idempotent ingest of interval summaries (telemetry-ingest.ts) into
 * raw rows and per-minute / per-hour rollups (telemetry.repository.ts), chart queries
 * (series-query.ts), the fleet summary, and the retention job.
 *
 * Jobs on node-cron: the rollup (every 10 s: raw rows appended since its watermark folded into
 * the minute and hour buckets of their own timestamps; queries of rollups catch up first) and
 * retention (hourly, and once at start). Ingest writes only raw rows: folding rows into rollups
 * in bulk costs a fraction of updating two rollup rows per summary.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { schedule } from 'node-cron';
import { matchesSelector, Telemetry } from '@cairn/shared';
import type { HubConfig } from '../../infra/config.js';
import type { HubContext, ModuleOptions } from '../../infra/context.js';
import { onDeviceMessage } from '../../infra/device-ingress.js';
import { Errors } from '../../infra/errors.js';
import { errorResponses } from '../../infra/api-schemas.js';
import { parseSelectorParam } from '../devices/devices.plugin.js';
import { parseModelRef } from '../registry/model-ref.js';
import { TelemetryIngest } from './telemetry-ingest.js';
import { planSeries, SeriesPoint, toPoints } from './series-query.js';
import { ROLLUP_CHUNK_ROWS, type SeriesScope } from './telemetry.repository.js';

/** Summaries claiming a time this far past the hub's clock are refused (`future_timestamp`). */
export const MAX_FUTURE_SKEW_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

/** Why a summary's time is refused, or null. Older than the raw retention (`too_old`): the retention job would delete it at once. */
export function summaryTimeProblem(ts: number, now: number, config: HubConfig['telemetry']): 'future_timestamp' | 'too_old' | null {
  if (ts > now + MAX_FUTURE_SKEW_MS) return 'future_timestamp';
  if (ts < now - config.rawRetentionDays * DAY_MS) return 'too_old';
  return null;
}

export function retentionCutoffs(config: HubConfig['telemetry'], now: number) {
  return {
    rawBefore: now - config.rawRetentionDays * DAY_MS,
    minuteBefore: now - config.minuteRetentionDays * DAY_MS,
    hourBefore: now - config.hourRetentionDays * DAY_MS,
  };
}

const telemetryPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { telemetry, devices, bus, clock, metrics, logger, db, config } = ctx;
  metrics.telemetryRawRows.set(telemetry.rawRows);

  const ingest = new TelemetryIngest({
    store: (items) => {
      const fresh = telemetry.storeBatch(items);
      try {
        // Last-seen times: one small transaction per batch; a failure here loses no summary, so it does not refuse the batch.
        const now = clock();
        db.transaction(() => {
          for (const id of new Set(items.filter((_, i) => fresh[i]).map((item) => item.deviceId))) devices.touch(id, now);
        })();
      } catch (err) {
        logger.error({ err }, 'recording devices as seen failed');
      }
      return fresh;
    },
    batchMaxRows: config.telemetry.batchMaxRows,
    batchMaxDelayMs: config.telemetry.batchMaxDelayMs,
    committed(fresh, batch) {
      metrics.telemetryBatchSize.observe(batch.size);
      metrics.telemetryStored.inc(fresh.length);
      if (batch.duplicates > 0) metrics.telemetryDuplicates.inc(batch.duplicates);
      for (const lag of batch.lagsSeconds) metrics.telemetryIngestLag.observe(lag);
      metrics.telemetryRawRows.set(telemetry.rawRows);
      for (const { deviceId, summary } of fresh) {
        try {
          bus.emit('telemetry.stored', { deviceId, telemetry: summary });
        } catch (err) {
          logger.error({ err, deviceId }, 'a telemetry.stored listener failed');
        }
      }
    },
    failed(err, size) {
      metrics.telemetryBatchFailures.inc();
      logger.error({ err, size }, 'storing a telemetry batch failed; its devices get no PUBACK and resend');
    },
  });

  await onDeviceMessage(ctx, 'telemetry', (deviceId, summary) => {
    const now = clock();
    const problem = summaryTimeProblem(summary.ts, now, config.telemetry);
    if (problem) {
      metrics.rejectedMessages.inc({ kind: 'telemetry', reason: problem });
      logger.warn({ deviceId, seq: summary.seq, ts: summary.ts, reason: problem }, 'dropped telemetry outside the accepted time range');
      return;
    }
    return ingest.enqueue(deviceId, summary, now);
  });

  const runRetention = () => {
    const started = Date.now();
    const deleted = telemetry.applyRetention(retentionCutoffs(config.telemetry, clock()));
    for (const table of ['raw', 'minute', 'hour'] as const) metrics.telemetryRetained.inc({ table }, deleted[table]);
    metrics.telemetryRawRows.set(telemetry.rawRows);
    logger.info({ ...deleted, ms: Date.now() - started }, 'telemetry retention applied');
  };
  const retentionJob = schedule('41 * * * *', () => {
    try {
      runRetention();
    } catch (err) {
      logger.error({ err }, 'telemetry retention failed');
    }
  });
  // Rollups follow the raw rows every 10 s, in chunks with the event loop free between them;
  // a rollup query catches up by itself first, so this only keeps that catch-up small.
  let rolling = false;
  const rollupJob = schedule('*/10 * * * * *', async () => {
    if (rolling) return;
    rolling = true;
    try {
      while (telemetry.rollUp(ROLLUP_CHUNK_ROWS) > 0) await new Promise((resolve) => setImmediate(resolve));
    } catch (err) {
      logger.error({ err }, 'telemetry rollup failed');
    } finally {
      rolling = false;
    }
  });
  fastify.addHook('onReady', async () => runRetention());
  // preClose: the root's onClose closes the database before the modules' onClose hooks run.
  fastify.addHook('preClose', async () => {
    await retentionJob.stop();
    await rollupJob.stop();
    ingest.flush();
  });

  app.get(
    '/api/v1/devices/:id/telemetry',
    {
      schema: {
        summary: 'Raw telemetry summaries of one device in a time range (epoch ms, from inclusive, to exclusive)',
        params: Type.Object({ id: Type.String({ maxLength: 64 }) }),
        querystring: Type.Object({
          from: Type.Optional(Type.Integer({ minimum: 0 })),
          to: Type.Optional(Type.Integer({ minimum: 0 })),
          limit: Type.Integer({ minimum: 1, maximum: 10_000, default: 1000 }),
        }),
        response: { 200: Type.Object({ deviceId: Type.String(), points: Type.Array(Telemetry) }), ...errorResponses },
      },
    },
    async (request) => {
      const { id } = request.params;
      if (!devices.get(id)) throw Errors.deviceNotFound([id]);
      const to = request.query.to ?? clock() + MAX_FUTURE_SKEW_MS;
      const from = request.query.from ?? 0;
      if (from >= to) throw Errors.badRequest(`inverted or empty time range: from (${from}) must be before to (${to})`);
      return { deviceId: id, points: telemetry.range(id, from, to, request.query.limit) };
    },
  );

  app.get(
    '/api/v1/telemetry/series',
    {
      schema: {
        summary: 'Aggregated telemetry of one device, a label selector or a model version over time (step chosen for charts unless given)',
        querystring: Type.Object({
          device: Type.Optional(Type.String({ maxLength: 64 })),
          selector: Type.Optional(Type.String({ maxLength: 4096 })),
          model: Type.Optional(Type.String({ maxLength: 160 })),
          from: Type.Integer({ minimum: 0 }),
          to: Type.Integer({ minimum: 0 }),
          stepMs: Type.Optional(Type.Integer({ minimum: 1000 })),
        }),
        response: {
          200: Type.Object({
            from: Type.Integer(),
            to: Type.Integer(),
            stepMs: Type.Integer(),
            source: Type.Union([Type.Literal('raw'), Type.Literal('minute'), Type.Literal('hour')]),
            devices: Type.Integer(),
            points: Type.Array(SeriesPoint),
          }),
          ...errorResponses,
        },
      },
    },
    async (request) => {
      const { device, selector, model, from, to, stepMs } = request.query;
      const scopes = [device, selector, model].filter((s) => s !== undefined).length;
      if (scopes !== 1) throw Errors.badRequest('give exactly one scope: device, selector or model');
      const plan = planSeries(from, to, stepMs, config.telemetry.maxQueryPoints);
      const { scope, deviceCount } = resolveScope(ctx, { device, selector, model }, plan.alignedFrom, to);
      const points = toPoints(plan, to, telemetry.series(plan.source, scope, plan.alignedFrom, to, plan.stepMs));
      return { from, to, stepMs: plan.stepMs, source: plan.source, devices: deviceCount, points };
    },
  );

  app.get(
    '/api/v1/fleet/summary',
    {
      schema: {
        summary: 'The fleet at a glance: devices online and offline, by active model version, by latest drift status, and their alerts and work orders',
        response: {
          200: Type.Object({
            devices: Type.Integer(),
            online: Type.Integer(),
            offline: Type.Integer(),
            byVersion: Type.Array(Type.Object({ name: Type.String(), version: Type.String(), devices: Type.Integer() })),
            noModel: Type.Integer(),
            drifting: Type.Integer({ description: "devices whose latest summary's drift status is alert" }),
            driftWarning: Type.Integer({ description: "devices whose latest summary's drift status is warn" }),
            alerting: Type.Integer({ description: 'devices with an unresolved alert' }),
            openAlerts: Type.Integer({ description: 'unresolved alerts (open or acknowledged)' }),
            openWorkOrders: Type.Integer({ description: 'work orders not done' }),
          }),
          ...errorResponses,
        },
      },
    },
    async () => fleetSummary(ctx),
  );
};

/** The devices a series covers; for a model version, those that sent summaries of it in the range. */
function resolveScope(ctx: HubContext, q: { device?: string | undefined; selector?: string | undefined; model?: string | undefined }, from: number, to: number): { scope: SeriesScope; deviceCount: number } {
  if (q.device !== undefined) {
    if (!ctx.devices.get(q.device)) throw Errors.deviceNotFound([q.device]);
    return { scope: { kind: 'devices', ids: [q.device] }, deviceCount: 1 };
  }
  if (q.selector !== undefined) {
    const selector = parseSelectorParam(q.selector);
    const ids = ctx.devices.list().filter((d) => matchesSelector(selector, d.labels)).map((d) => d.id);
    return { scope: { kind: 'devices', ids }, deviceCount: ids.length };
  }
  const ref = parseModelRef(q.model!);
  const model = `${ref.name}@${ref.version}`;
  return { scope: { kind: 'model', model }, deviceCount: ctx.telemetry.devicesWithModel(model, from, to) };
}

export function fleetSummary(ctx: HubContext) {
  const all = ctx.devices.list();
  const latest = ctx.telemetry.latestByDevice();
  const versions = new Map<string, { name: string; version: string; devices: number }>();
  let noModel = 0;
  let drifting = 0;
  let driftWarning = 0;
  for (const d of all) {
    const active = d.reported?.active;
    if (active) {
      const key = `${active.name}@${active.version}`;
      const entry = versions.get(key) ?? { name: active.name, version: active.version, devices: 0 };
      entry.devices++;
      versions.set(key, entry);
    } else {
      noModel++;
    }
    const status = latest.get(d.id)?.driftStatus;
    if (status === 'alert') drifting++;
    else if (status === 'warn') driftWarning++;
  }
  const online = all.filter((d) => d.online).length;
  const byVersion = [...versions.values()].sort((a, b) => a.name.localeCompare(b.name) || a.version.localeCompare(b.version, undefined, { numeric: true }));
  const alerts = ctx.alerts.summary();
  return { devices: all.length, online, offline: all.length - online, byVersion, noModel, drifting, driftWarning, alerting: alerts.alertingDevices, openAlerts: alerts.openAlerts, openWorkOrders: alerts.openWorkOrders };
}

export default telemetryPlugin;
