/**
 * Alerts module: alerts and maintenance work orders. Reacts to the bus (the rules in
 * `alert-rules.ts`), runs the clock-driven checks every `alerts.checkSeconds` (a timer; times
 * are read from `ctx.clock`, so tests move a fake clock), and serves
 * `/api/v1/alerts…` and `/api/v1/work-orders…` (viewer reads, operator acts).
 *
 * Bus handlers of device messages run before the device's PUBACK (see infra/broker.ts); a rule
 * that fails is logged and the message stays acknowledged (the device's own record of it is
 * already stored), so one bad fact never stops the broker.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { ModuleOptions } from '../../infra/context.js';
import { ErrorResponse, errorResponses } from '../../infra/api-schemas.js';
import { Errors } from '../../infra/errors.js';
import { ALERT_CAUSES, ALERT_STATES, WORK_ORDER_STATES } from './alerts.repository.js';
import { AlertsService } from './alerts.service.js';
import { AlertRules } from './alert-rules.js';
import { AlertView, WorkOrderView, alertView, workOrderView } from './alert-view.js';

const Params = Type.Object({ id: Type.String({ maxLength: 64 }) });
const Limit = Type.Integer({ minimum: 1, maximum: 1000, default: 100 });

const alertsPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const alerts = new AlertsService(ctx, ctx.alerts);
  const rules = new AlertRules(ctx, alerts);
  alerts.refreshGauge();

  const guarded =
    <A extends unknown[]>(what: string, fn: (...args: A) => void) =>
    (...args: A) => {
      try {
        fn(...args);
      } catch (err) {
        ctx.logger.error({ err, rule: what }, 'alert rule failed');
      }
    };
  const unsubscribe = [
    ctx.bus.on('telemetry.stored', guarded('telemetry', ({ deviceId, telemetry }) => rules.onTelemetry(deviceId, telemetry))),
    ctx.bus.on('device.presence', guarded('presence', ({ deviceId, online }) => rules.onPresence(deviceId, online))),
    ctx.bus.on('device.reported', guarded('reported', ({ deviceId, deployment }) => rules.onReported(deviceId, deployment))),
    ctx.bus.on('device.event', guarded('event', ({ deviceId, event }) => rules.onEvent(deviceId, event))),
  ];
  const check = guarded('check', () => {
    rules.check();
    ctx.alerts.flushDriftStates();
  });
  let timer: NodeJS.Timeout | null = null;
  fastify.addHook('onReady', async () => {
    check();
    timer = setInterval(check, ctx.config.alerts.checkSeconds * 1000);
    timer.unref();
  });
  // preClose: the root's onClose closes the database before the modules' onClose hooks run.
  fastify.addHook('preClose', async () => {
    for (const off of unsubscribe) off();
    if (timer) clearInterval(timer);
    ctx.alerts.flushDriftStates();
  });

  app.get(
    '/api/v1/alerts',
    {
      schema: {
        summary: 'Alerts, newest first',
        querystring: Type.Object({
          state: Type.Optional(Type.Enum(ALERT_STATES)),
          deviceId: Type.Optional(Type.String({ maxLength: 64 })),
          cause: Type.Optional(Type.Enum(ALERT_CAUSES)),
          limit: Limit,
        }),
        response: { 200: Type.Object({ alerts: Type.Array(AlertView) }), ...errorResponses },
      },
    },
    async (request) => ({ alerts: alerts.repo.list(request.query).map(alertView) }),
  );

  app.get('/api/v1/alerts/:id', { schema: { params: Params, response: { 200: AlertView, ...errorResponses } } }, async (request) => {
    const alert = alerts.repo.get(request.params.id);
    if (!alert) throw Errors.alertNotFound(request.params.id);
    return alertView(alert);
  });

  const actionSchema = (response: typeof AlertView | typeof WorkOrderView) => ({ schema: { params: Params, response: { 200: response, ...errorResponses, 409: ErrorResponse } } });
  app.post('/api/v1/alerts/:id/acknowledge', actionSchema(AlertView), async (request) => alertView(alerts.acknowledge(request.actor, request.params.id)));
  app.post('/api/v1/alerts/:id/resolve', actionSchema(AlertView), async (request) => alertView(alerts.resolve(request.actor, request.params.id)));

  app.get(
    '/api/v1/work-orders',
    {
      schema: {
        summary: 'Maintenance work orders, newest first',
        querystring: Type.Object({ state: Type.Optional(Type.Enum(WORK_ORDER_STATES)), deviceId: Type.Optional(Type.String({ maxLength: 64 })), limit: Limit }),
        response: { 200: Type.Object({ workOrders: Type.Array(WorkOrderView) }), ...errorResponses },
      },
    },
    async (request) => ({ workOrders: alerts.repo.listWorkOrders(request.query).map(workOrderView) }),
  );

  app.get('/api/v1/work-orders/:id', { schema: { params: Params, response: { 200: WorkOrderView, ...errorResponses } } }, async (request) => {
    const wo = alerts.repo.getWorkOrder(request.params.id);
    if (!wo) throw Errors.workOrderNotFound(request.params.id);
    return workOrderView(wo);
  });
  app.post('/api/v1/work-orders/:id/acknowledge', actionSchema(WorkOrderView), async (request) => workOrderView(alerts.acknowledgeWorkOrder(request.actor, request.params.id)));
  app.post('/api/v1/work-orders/:id/done', actionSchema(WorkOrderView), async (request) => workOrderView(alerts.finishWorkOrder(request.actor, request.params.id)));
};

export default alertsPlugin;
