/**
 * Rollouts module — the HTTP API of staged rollouts (`/api/v1/rollouts…`) and the engine's
 * triggers: device reports (through the bus), a node-cron tick every `rollouts.tickSeconds`,
 * and one evaluation of everything at start, which is how a rollout resumes after a restart.
 * The engine (`rollout-engine.ts`) lives in the HubContext because direct deployments use it too.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { schedule } from 'node-cron';
import type { ModuleOptions } from '../../infra/context.js';
import { ErrorResponse, errorResponses } from '../../infra/api-schemas.js';
import { RolloutRequest } from './rollout-spec.js';
import { RolloutDeviceView, RolloutView, rolloutDeviceView, rolloutView } from './rollout-view.js';
import { ROLLOUT_STATES } from './rollouts.repository.js';

const Params = Type.Object({ id: Type.String({ maxLength: 64 }) });
const ACTIONS = ['start', 'pause', 'resume', 'abort', 'rollback', 'approve'] as const;

const rolloutsPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const engine = ctx.rollouts;
  const view = (id: string) => rolloutView(ctx, engine.get(id));

  app.post(
    '/api/v1/rollouts',
    {
      schema: {
        summary: 'Create a staged rollout of a model version to a label-selected cohort (starts it unless start is false)',
        body: RolloutRequest,
        response: { 201: RolloutView, ...errorResponses, 409: ErrorResponse },
      },
    },
    async (request, reply) => {
      const rollout = await engine.create(request.actor, request.body);
      reply.code(201);
      return view(rollout.id);
    },
  );

  app.get(
    '/api/v1/rollouts',
    {
      schema: {
        querystring: Type.Object({
          state: Type.Optional(Type.Array(Type.Enum(ROLLOUT_STATES), { maxItems: ROLLOUT_STATES.length })),
          limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
          direct: Type.Boolean({ default: false, description: 'include direct deployments (one-stage rollouts)' }),
        }),
        response: { 200: Type.Object({ rollouts: Type.Array(RolloutView) }), ...errorResponses },
      },
    },
    async (request) => ({
      rollouts: engine.repo
        .list({ ...(request.query.state ? { states: request.query.state } : {}), limit: request.query.limit, includeDirect: request.query.direct })
        .map((r) => rolloutView(ctx, r, 10)),
    }),
  );

  app.get('/api/v1/rollouts/:id', { schema: { params: Params, response: { 200: RolloutView, ...errorResponses } } }, async (request) => view(request.params.id));

  app.get(
    '/api/v1/rollouts/:id/devices',
    { schema: { params: Params, response: { 200: Type.Object({ devices: Type.Array(RolloutDeviceView) }), ...errorResponses } } },
    async (request) => ({ devices: engine.repo.devices(engine.get(request.params.id).id).map(rolloutDeviceView) }),
  );

  for (const action of ACTIONS) {
    app.post(
      `/api/v1/rollouts/:id/${action}`,
      { schema: { params: Params, response: { 200: RolloutView, ...errorResponses, 409: ErrorResponse } } },
      async (request) => {
        await engine[action](request.actor, request.params.id);
        return view(request.params.id);
      },
    );
  }

  const stopReports = ctx.bus.on('device.reported', ({ deviceId, deployment }) => engine.onReported(deviceId, deployment));
  const every = ctx.config.rollouts.tickSeconds;
  const job = schedule(every === 60 ? '0 * * * * *' : `*/${every} * * * * *`, () => {
    engine.tick().catch((err) => ctx.logger.error({ err }, 'rollout tick failed'));
  });
  fastify.addHook('onReady', async () => {
    await engine.tick();
  });
  fastify.addHook('onClose', async () => {
    stopReports();
    await job.stop();
    await engine.stop();
  });
};

export default rolloutsPlugin;
