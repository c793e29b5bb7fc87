/**
 * Deployments module — direct assignment (a model version to devices by id or label selector,
 * carried out as a one-stage rollout by the rollouts engine) and the deployments views, which
 * also show every rollout's documents. It owns the signed desired documents: re-publishes every
 * live one at start (the embedded broker keeps retained messages in memory only) and re-signs
 * documents before they expire.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { schedule } from 'node-cron';
import { matchesSelector, DeploymentPhase } from '@cairn/shared';
import type { HubContext, ModuleOptions } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { errorResponses, iso } from '../../infra/api-schemas.js';
import { parseSelectorParam } from '../devices/devices.plugin.js';
import { parseModelRef, formatModelRef } from '../registry/model-ref.js';
import { assertMayDeploy } from '../registry/approval-policy.js';
import { bundleOf, signDesiredFor } from './desired-signer.js';
import type { DeploymentRow, DesiredRow } from './deployments.repository.js';

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

function deploymentView(ctx: HubContext, d: DeploymentRow) {
  const devices = d.deviceIds.map((id) => {
    const desired = ctx.deployments.desiredFor(id);
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
  const publisher = ctx.desired;

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
      // A direct assignment is a one-stage rollout that tells every target at once and completes
      // as soon as it did; it is refused like any rollout when a target is in an active one.
      const rollout = await ctx.rollouts.create(
        request.actor,
        { model: modelRef, ...(deviceIds ? { deviceIds: targets } : { selector: selector! }), stages: [{ size: '100%', successThreshold: 0, failureThreshold: 100 }] },
        'direct',
      );
      const id = rollout.id;
      ctx.audit.append(request.actor, {
        action: 'deployment.create',
        target: `deployment:${id}`,
        after: { model: formatModelRef(model), digest: model.digest, devices: targets.length, ...(deviceIds ? { deviceIds: targets.slice(0, 100) } : { selector }) },
      });
      logger.info({ deployment: id, model: modelRef, devices: targets.length }, 'deployment created');
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
   * Re-signs the live documents `due` selects, with a new seq, the keyring in force and the same
   * model — its bundle as the registry holds it now (a revocation may have re-signed it), else as
   * the old document carried it. Each device's read-sign-write runs without an await in between,
   * so a deployment landing meanwhile is never overwritten with the older bundle; one device that
   * cannot be signed does not stop the others. Returns the devices to publish.
   */
  const resignLive = (candidates: DesiredRow[], due: (row: DesiredRow) => boolean, why: string): string[] => {
    const resigned: string[] = [];
    for (const { deviceId } of candidates) {
      try {
        const current = deployments.desiredFor(deviceId);
        if (!current || !due(current)) continue;
        const carried = bundleOf(current);
        const bundle = carried ? (registry.get(carried.manifest.name, carried.manifest.version)?.bundle ?? carried) : null;
        deployments.saveDesired(signDesiredFor(ctx, deviceId, current.deploymentId, bundle), clock());
        resigned.push(deviceId);
      } catch (err) {
        logger.error({ err, deviceId }, 'could not re-sign the desired document of a device');
      }
    }
    if (resigned.length > 0) logger.info({ count: resigned.length }, `re-signed desired documents: ${why}`);
    return resigned;
  };
  const resignExpiring = async () => {
    const horizon = clock() + ctx.config.desired.resignWithinHours * 3600_000;
    await publisher.publish(resignLive(deployments.expiringBefore(horizon), (row) => row.expiresAt < horizon, 'they expire soon'));
  };
  // A new keyring reaches devices only inside desired documents (DESIGN §3): every live one is
  // re-signed with it at once, so devices learn of a rotation, revocation or floor right away.
  const stopListening = ctx.bus.on('keyring.installed', ({ version }) => {
    const all = deployments.allDesired();
    publisher.publish(resignLive(all, () => true, `keyring version ${version} installed`)).catch((err: Error) => logger.error({ err }, 'publishing re-signed desired documents failed'));
  });

  const job = schedule('17 * * * *', () => {
    resignExpiring().catch((err) => logger.error({ err }, 're-signing desired documents failed'));
  });
  fastify.addHook('onClose', async () => {
    stopListening();
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
