/**
 * buildHub(config): composes the infrastructure and the modules into one fastify instance.
 * It never listens — `server.ts` does — so tests build a hub and use `inject()`.
 *
 * Composition order matters only where stated: infrastructure first, then the modules, each an
 * encapsulated plugin that owns its routes, MQTT handlers, tables and jobs.
 */
import fastifySwagger from '@fastify/swagger';
import AjvCompiler from '@fastify/ajv-compiler';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify';
import { pino, type Logger } from 'pino';
import { canonicalJsonProblem, MAX_JSON_DEPTH } from '@cairn/shared';
import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { tlsEnabled, type HubConfig } from './infra/config.js';
import { loadHubTls, mqttServerTls } from './infra/tls.js';
import { openDatabase } from './infra/db.js';
import { createEmbeddedBroker, type BrokerPort, type EmbeddedBroker } from './infra/broker.js';
import { createExternalBroker, type ExternalBroker } from './infra/external-broker.js';
import { loadOrCreateBrokerAccount } from './infra/broker-account.js';
import type { AclObserver } from './infra/broker-acl.js';
import { EventBus } from './infra/bus.js';
import { HubKeys } from './infra/keys.js';
import { createMetrics } from './infra/metrics.js';
import { Errors, fromFrameworkError, HubError } from './infra/errors.js';
import type { HubContext } from './infra/context.js';
import { DevicesRepository } from './modules/devices/devices.repository.js';
import { RegistryRepository } from './modules/registry/registry.repository.js';
import { BlobStore } from './modules/registry/blob-store.js';
import { DeploymentsRepository } from './modules/deployments/deployments.repository.js';
import { TelemetryRepository } from './modules/telemetry/telemetry.repository.js';
import { EnrollmentRepository } from './modules/enrollment/enrollment.repository.js';
import { EnrollmentService } from './modules/enrollment/enrollment.service.js';
import enrollmentPlugin from './modules/enrollment/enrollment.plugin.js';
import devicesPlugin from './modules/devices/devices.plugin.js';
import registryPlugin from './modules/registry/registry.plugin.js';
import deploymentsPlugin from './modules/deployments/deployments.plugin.js';
import { DesiredPublisher } from './modules/deployments/desired-publisher.js';
import { RolloutEngine } from './modules/rollouts/rollout-engine.js';
import { RolloutsRepository } from './modules/rollouts/rollouts.repository.js';
import rolloutsPlugin from './modules/rollouts/rollouts.plugin.js';
import blobsPlugin from './modules/blobs/blobs.plugin.js';
import telemetryPlugin from './modules/telemetry/telemetry.plugin.js';
import consolePlugin from './modules/console/console.plugin.js';
import { AuditLog } from './modules/audit/audit-log.js';
import auditPlugin from './modules/audit/audit.plugin.js';
import { OperatorsRepository } from './modules/operators/operators.repository.js';
import { OperatorsService } from './modules/operators/operators.service.js';
import { accessHook } from './modules/operators/access-hook.js';
import operatorsPlugin from './modules/operators/operators.plugin.js';
import keysPlugin from './modules/keys/keys.plugin.js';
import streamPlugin from './modules/stream/stream.plugin.js';
import { AlertsRepository } from './modules/alerts/alerts.repository.js';
import alertsPlugin from './modules/alerts/alerts.plugin.js';
import webhooksPlugin from './modules/webhooks/webhooks.plugin.js';

export interface Hub {
  app: FastifyInstance;
  ctx: HubContext;
  /** The embedded aedes broker, or the client of an external one (`mqtt.broker`). */
  broker: EmbeddedBroker | ExternalBroker;
  /** The bootstrap admin's credentials on disk (0600); the paths are safe to show, the contents never. */
  adminToken: { tokenFile: string };
  adminPasswordFile: string;
  /** Every route registered (`METHOD /pattern`), for checking them against the access table. */
  routes: string[];
}

export interface BuildHubOptions {
  logger?: Logger;
  clock?: () => number;
}

export async function buildHub(config: HubConfig, options: BuildHubOptions = {}): Promise<Hub> {
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const logger = options.logger ?? pino({ level: config.logLevel, redact: REDACTED_LOG_PATHS });
  const clock = options.clock ?? Date.now;
  const metrics = createMetrics();
  const db = openDatabase(join(config.dataDir, 'cairn.db'));
  const keys = HubKeys.load(config.dataDir, clock());
  const audit = new AuditLog(db, logger.child({ component: 'audit' }), clock);
  const operators = new OperatorsService({ repo: new OperatorsRepository(db), audit, config, clock, logger: logger.child({ component: 'operators' }), metrics });
  const bootstrap = await operators.bootstrap(config.dataDir);
  const devices = new DevicesRepository(db);
  let brokerPort: BrokerPort | null = null;
  const enrollment = new EnrollmentService({
    repo: new EnrollmentRepository(db),
    devices,
    broker: () => brokerPort!,
    clock,
    logger: logger.child({ component: 'enrollment' }),
    mqttUrl: () => mqttPublicUrl(config),
    rootPublicKey: Buffer.from(keys.rootPublicKey).toString('base64'),
  });
  const observer: AclObserver = {
    denied(action, reason, clientId, topic) {
      metrics.deniedMqtt.inc({ action, reason });
      logger.warn({ action, reason, clientId, topic }, 'mqtt access denied');
    },
  };
  const brokerLogger = logger.child({ component: 'broker' });
  const tls = loadHubTls(config);
  const broker = config.mqtt.broker
    ? createExternalBroker({
        url: config.mqtt.broker,
        account: loadOrCreateBrokerAccount(config.dataDir),
        logger: brokerLogger,
        observer,
        deviceActive: (deviceId) => enrollment.isActive(deviceId),
        ...(tls.ca ? { tls: { ca: tls.ca } } : {}),
      })
    : await createEmbeddedBroker({
        logger: brokerLogger,
        observer,
        authenticator: (deviceId, password) => enrollment.authenticate(deviceId, password),
        rate: config.mqtt.rateLimit,
        ...(tls.server ? { tls: mqttServerTls({ ...tls, server: tls.server }) } : {}),
      });
  brokerPort = broker.port;
  // The publisher and the rollout engine take the context they are part of.
  const ctx = {
    config,
    logger,
    db,
    broker: broker.port,
    bus: new EventBus(),
    keys,
    metrics,
    clock,
    devices,
    enrollment,
    registry: new RegistryRepository(db),
    blobs: new BlobStore(config.dataDir),
    deployments: new DeploymentsRepository(db),
    telemetry: new TelemetryRepository(db),
    alerts: new AlertsRepository(db),
    operators,
    audit,
  } as Omit<HubContext, 'desired' | 'rollouts'> as HubContext;
  ctx.desired = new DesiredPublisher(ctx);
  ctx.rollouts = new RolloutEngine(ctx, new RolloutsRepository(db));

  const app = Fastify({
    // HTTPS asks no client certificate: operators' browsers have none (requireClientCert is MQTT's).
    ...(tls.server ? { https: tls.server } : {}),
    loggerInstance: logger as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }), // request lines are noise at fleet scale; errors are still logged
    bodyLimit: BODY_LIMIT,
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true } },
    schemaController: { compilersFactory: { buildValidator: bodiesWithoutCoercion } },
  });

  app.setErrorHandler((error: FastifyError | HubError, request, reply) => {
    const known = error instanceof HubError ? error : error.validation ? Errors.badRequest(error.message) : fromFrameworkError(error, { headers: request.headers, bodyLimit: request.routeOptions.bodyLimit ?? BODY_LIMIT });
    if (known) {
      return reply.code(known.statusCode).headers(known.headers).send({ statusCode: known.statusCode, code: known.code, error: httpStatusText(known.statusCode), message: known.message });
    }
    request.log.error({ err: error, url: request.url }, 'request failed');
    return reply.code(500).send({ statusCode: 500, code: 'CAIRN_INTERNAL', error: httpStatusText(500), message: 'internal error; see the hub log' });
  });

  // Every route meets the access table (modules/operators/access.ts) before its handler; the
  // list of registered routes lets a test prove none is missing from it.
  const routes: string[] = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push(`${method} ${route.url}`);
  });
  app.decorateRequest('principal', null);
  app.decorateRequest('actor', null as unknown as FastifyRequest['actor']);
  app.addHook('onRequest', accessHook(operators, metrics));
  app.addHook('preValidation', refuseUnsignableBody);

  // OpenAPI 3 description of every route, generated from the same TypeBox schemas that validate
  // requests and responses; served at /docs/json.
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'Cairn hub API', version: '1', description: 'Edge MLOps fleet manager: models, deployments, devices, telemetry.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, session: { type: 'apiKey', in: 'cookie', name: 'cairn_session' } } },
      security: [{ bearer: [] }, { session: [] }],
    },
  });
  app.get('/docs/json', { schema: { hide: true } }, async () => app.swagger());

  app.get('/api/v1/trust', async () => ({
    rootPublicKey: Buffer.from(keys.rootPublicKey).toString('base64'),
    rootKeyId: keys.rootKeyId,
    mqttUrl: mqttPublicUrl(config),
  }));
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_request, reply) => {
    const connected = broker.port.connectedClients();
    if (connected !== null) metrics.connectedClients.set(connected);
    metrics.devicesOnline.set(devices.countOnline());
    reply.type(metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  const modules = { ctx };
  await app.register(devicesPlugin, modules);
  await app.register(enrollmentPlugin, modules);
  await app.register(registryPlugin, modules);
  await app.register(deploymentsPlugin, modules);
  await app.register(rolloutsPlugin, modules);
  await app.register(blobsPlugin, modules);
  await app.register(telemetryPlugin, modules);
  await app.register(alertsPlugin, modules);
  await app.register(webhooksPlugin, modules);
  await app.register(operatorsPlugin, modules);
  await app.register(auditPlugin, modules);
  await app.register(keysPlugin, modules);
  await app.register(streamPlugin, modules);
  await app.register(consolePlugin, modules);

  app.addHook('onClose', async () => {
    await broker.close();
    db.close();
    metrics.close();
  });

  return { app, ctx, broker, adminToken: { tokenFile: bootstrap.adminTokenFile }, adminPasswordFile: bootstrap.adminPasswordFile, routes };
}

/**
 * Refuses a JSON body that canonical JSON cannot represent (nesting past MAX_BODY_DEPTH, a number
 * that overflowed to Infinity, a lone surrogate) before any handler signs, audits or stores it,
 * where it would fail as a 500. Only plain parsed JSON is walked (uploads arrive as streams).
 */
async function refuseUnsignableBody(request: FastifyRequest): Promise<void> {
  const body = request.body;
  if (typeof body !== 'object' || body === null || !(Array.isArray(body) || Object.getPrototypeOf(body) === Object.prototype)) return;
  const problem = canonicalJsonProblem(body, MAX_BODY_DEPTH);
  if (problem) throw Errors.badJson(`the body cannot be represented as canonical JSON: ${problem.message}`);
}

/** A body's sections can end up in a manifest inside a desired document, which devices refuse past MAX_JSON_DEPTH. */
const MAX_BODY_DEPTH = MAX_JSON_DEPTH / 2;

/**
 * Query strings and path parameters are text, so their validators coerce (`?limit=10` is the
 * integer 10); a JSON body has real types, and `{"username": 12345}` is a client's mistake to
 * refuse with 400, not to turn into the user "12345". Two fastify validator pools, chosen by
 * the part of the request.
 */
const ajvCompilers = AjvCompiler();
const bodiesWithoutCoercion: typeof ajvCompilers = (externalSchemas, options) => {
  const coercing = ajvCompilers(externalSchemas, options);
  const strict = ajvCompilers(externalSchemas, { ...options, customOptions: { ...options?.customOptions, coerceTypes: false } } as typeof options);
  return (route) => (route.httpPart === 'body' ? strict : coercing)(route);
};

/** Largest JSON body (routes that take uploads set their own). */
const BODY_LIMIT = 1024 * 1024;

/** The broker URL devices are told to use. */
function mqttPublicUrl(config: HubConfig): string {
  return config.mqtt.publicUrl ?? config.mqtt.broker ?? `${tlsEnabled(config) ? 'mqtts' : 'mqtt'}://${config.mqtt.host}:${config.mqtt.port}`;
}

/** Never in a log line, whatever logs a request or a body: credentials and passwords. */
const REDACTED_LOG_PATHS = ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie', 'password', '*.password', 'body.password', 'secret', '*.secret'];

function httpStatusText(status: number): string {
  return ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 409: 'Conflict', 429: 'Too Many Requests', 413: 'Payload Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Entity', 500: 'Internal Server Error' } as Record<number, string>)[status] ?? 'Error';
}
