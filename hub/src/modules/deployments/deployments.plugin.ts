/**
 * Deployments module — the minimal direct assignment that staged rollouts will replace: assign a
 * model version to devices (by id or label selector), write one signed desired document per
 * device, publish it retained. Re-publishes every live document at start (the embedded broker
 * keeps retained messages in memory only) and re-signs documents before they expire.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { schedule } from 'node-cron';
import { randomBytes } from 'node:crypto';
import { deviceTopic, matchesSelector, DeploymentPhase, type SignedDesiredT } from '@cairn/shared';
import type { HubContext, ModuleOptions } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { errorResponses, iso } from '../../infra/api-schemas.js';
import { parseSelectorParam } from '../devices/devices.plugin.js';
import { parseModelRef, formatModelRef } from '../registry/model-ref.js';
import { assertMayDeploy } from '../registry/approval-policy.js';
import { signDesiredFor } from './desired-signer.js';
import type { DeploymentRow } from './deployments.repository.js';

const DeviceDeploymentState = Type.Union([DeploymentPhase, Type.Literal('pending'), Type.Literal('superseded')]);
const DeploymentView = Type.Object({
  id: Type.String(),
  model: Type.String(),
  digest: Type.String(),
  target: Type.Object({ deviceIds: Type.Optional(Type.Array(Type.String())), selector: Type.Optional(Type.String()) }),
  createdAt: Type.String(),
  devices: Type.Array(Type.Object({ id: Type.String(), seq: Type.Integer(), state: DeviceDeploymentState, reason: Type.Optional(Type.String()) })),
  summary: Type.Record(Type.String(), Type.Integer()),
});

/**
 * Publishes desired documents one at a time, in the order asked, and always the device's
 * *current* row: however deployments and re-signing interleave, the last document the broker
 * retains for a device is the newest one in the database.
 */
export class DesiredPublisher {
  private tail: Promise<void> = Promise.resolve();
  constructor(private readonly ctx: HubContext) {}

  publish(deviceIds: readonly string[]): Promise<void> {
    const run = this.tail.then(async () => {
      for (const deviceId of deviceIds) {
        const row = this.ctx.deployments.desiredFor(deviceId);
        if (!row) continue;
        await this.ctx.broker.publish(deviceTopic(deviceId, 'desired'), Buffer.from(row.document), { qos: 1, retain: true });
        this.ctx.metrics.desiredPublished.inc();
        this.ctx.bus.emit('desired.published', { deviceId, seq: row.seq, deploymentId: row.deploymentId });
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
}

function deploymentView(ctx: HubContext, d: DeploymentRow) {
  const devices = d.deviceIds.map((id) => {
    const desired = ctx.deployments.desiredHead(id);
    const status = ctx.devices.get(id)?.reported?.deployment;
    const seq = desired?.seq ?? 0;
    if (desired && desired.deploymentId !== d.id) return { id, seq, state: 'superseded' as const };
    if (status && status.deploymentId === d.id) return { id, seq, state: status.phase, ...(status.reason ? { reason: status.reason } : {}) };
    return { id, seq, state: 'pending' as const };
  });
  const summary: Record<string, number> = {};
  for (const device of devices) summary[device.state] = (summary[device.state] ?? 0) + 1;
  return {
    id: d.id,
    model: formatModelRef({ name: d.modelName, version: d.modelVersion }),
    digest: d.digest,
    target: d.target,
    createdAt: iso(d.createdAt)!,
    devices,
    summary,
  };
}

const deploymentsPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { deployments, devices, registry, logger, clock } = ctx;
  const publisher = new DesiredPublisher(ctx);

  app.post(
    '/api/v1/deployments',
    {
      schema: {
        summary: 'Assign a model version to devices, by id or by label selector',
        body: Type.Object(
          {
            model: Type.String({ maxLength: 200, description: 'name@version' }),
            deviceIds: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 100_000 })),
            selector: Type.Optional(Type.String({ maxLength: 4096 })),
          },
          { additionalProperties: false },
        ),
        response: { 201: DeploymentView, ...errorResponses, 409: errorResponses[400] },
      },
    },
    async (request, reply) => {
      const { model: modelRef, deviceIds, selector } = request.body;
      if ((deviceIds === undefined) === (selector === undefined)) throw Errors.badRequest('give exactly one of deviceIds or selector');
      const ref = parseModelRef(modelRef);
      const model = registry.get(ref.name, ref.version);
      if (!model) throw Errors.modelNotFound(modelRef);
      let targets: string[];
      if (deviceIds) {
        targets = [...new Set(deviceIds)];
        const unknown = targets.filter((id) => !devices.get(id));
        if (unknown.length > 0) throw Errors.deviceNotFound(unknown);
      } else {
        const parsed = parseSelectorParam(selector!);
        targets = devices.list().filter((d) => matchesSelector(parsed, d.labels)).map((d) => d.id);
        if (targets.length === 0) throw Errors.noTargets(`selector ${JSON.stringify(selector)}`);
      }
      assertMayDeploy(ctx, model, targets);
      const id = `dep_${randomBytes(9).toString('base64url')}`;
      const now = clock();
      const rows = deployments.transaction(() => {
        deployments.insertDeployment({ id, modelName: model.name, modelVersion: model.version, digest: model.digest, target: deviceIds ? { deviceIds: targets } : { selector: selector! }, createdAt: now });
        const signed = targets.map((deviceId) => {
          const row = signDesiredFor(ctx, deviceId, id, model.bundle);
          deployments.saveDesired(row, now);
          deployments.addTarget(id, deviceId, row.seq);
          return row;
        });
        ctx.audit.append(request.actor, {
          action: 'deployment.create',
          target: `deployment:${id}`,
          after: { model: formatModelRef(model), digest: model.digest, devices: targets.length, ...(deviceIds ? { deviceIds: targets.slice(0, 100) } : { selector }) },
        });
        return signed;
      });
      await publisher.publish(rows.map((r) => r.deviceId));
      logger.info({ deployment: id, model: modelRef, devices: rows.length }, 'deployment created');
      reply.code(201);
      return deploymentView(ctx, deployments.getDeployment(id)!);
    },
  );

  app.get(
    '/api/v1/deployments',
    {
      schema: {
        querystring: Type.Object({ limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }) }),
        response: { 200: Type.Object({ deployments: Type.Array(DeploymentView) }), ...errorResponses },
      },
    },
    async (request) => ({ deployments: deployments.listDeployments(request.query.limit).map((d) => deploymentView(ctx, d)) }),
  );

  app.get(
    '/api/v1/deployments/:id',
    { schema: { params: Type.Object({ id: Type.String({ maxLength: 64 }) }), response: { 200: DeploymentView, ...errorResponses } } },
    async (request) => {
      const d = deployments.getDeployment(request.params.id);
      if (!d) throw Errors.deploymentNotFound(request.params.id);
      return deploymentView(ctx, d);
    },
  );

  /**
   * Re-signs live documents that expire within the configured horizon, with a new seq and the
   * same bundle. Each device's read-sign-write runs without an await in between, so a
   * deployment landing meanwhile is never overwritten with the older bundle; one device that
   * cannot be signed does not stop the others.
   */
  const resignExpiring = async () => {
    const horizon = clock() + ctx.config.desired.resignWithinHours * 3600_000;
    const resigned: string[] = [];
    for (const { deviceId } of deployments.expiringBefore(horizon)) {
      try {
        const current = deployments.desiredFor(deviceId);
        if (!current || current.expiresAt >= horizon) continue;
        const bundle = (JSON.parse(current.document) as SignedDesiredT).document.bundle;
        deployments.saveDesired(signDesiredFor(ctx, deviceId, current.deploymentId, bundle), clock());
        resigned.push(deviceId);
      } catch (err) {
        logger.error({ err, deviceId }, 'could not re-sign the desired document of a device');
      }
    }
    await publisher.publish(resigned);
    if (resigned.length > 0) logger.info({ count: resigned.length }, 're-signed expiring desired documents');
  };

  const job = schedule('17 * * * *', () => {
    resignExpiring().catch((err) => logger.error({ err }, 're-signing desired documents failed'));
  });
  fastify.addHook('onClose', async () => {
    await job.stop();
  });

  fastify.addHook('onReady', async () => {
    await resignExpiring();
    const all = deployments.allDesired().map((r) => r.deviceId);
    await publisher.publish(all);
    if (all.length > 0) logger.info({ count: all.length }, 're-published retained desired documents');
  });
};

export default deploymentsPlugin;
