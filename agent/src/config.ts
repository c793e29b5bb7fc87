/**
 * The agent's configuration: a YAML file (`--config agent.yaml`) plus environment overrides,
 * validated against one TypeBox schema with every error listed at once.
 *
 * Environment overrides are derived from the schema path: `CAIRN_AGENT_` followed by each
 * property name in SCREAMING_SNAKE_CASE, joined with `_` (`mqttUrl` → `CAIRN_AGENT_MQTT_URL`,
 * `api.port` → `CAIRN_AGENT_API_PORT`, `source.intervalMs` → `CAIRN_AGENT_SOURCE_INTERVAL_MS`).
 * Values are read as the schema expects: strings verbatim, numbers and booleans parsed, objects
 * (`CAIRN_AGENT_LABELS`) as JSON; `CAIRN_AGENT_API=false` disables the local API. An override
 * wins over the file.
 *
 * A relative `stateDir` is resolved against the directory of the config file (or the working
 * directory when there is no file).
 */
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Type, type Static, type TSchema } from 'typebox';
import { Value } from 'typebox/value';
import { parse as parseYaml } from 'yaml';
import { DeviceId, Labels, PublicKeyB64, TrialSection, Compile, applyEnvOverrides, envName as sharedEnvName, MACHINE_TYPE_NAMES, FAULT_CLASSES, DRIFT_SCENARIO_KINDS } from '@cairn/shared';
import { ConfigError } from './errors.js';

export const ENV_PREFIX = 'CAIRN_AGENT';

const closed = { additionalProperties: false } as const;

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const ApiConfigSchema = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 253, default: '127.0.0.1', description: 'address the local API listens on; keep it on loopback' }),
    port: Type.Integer({ minimum: 0, maximum: 65535, default: 7070, description: '0 picks a free port' }),
  },
  closed,
);

export const SimulatedSourceSchema = Type.Object(
  {
    kind: Type.Literal('simulated'),
    intervalMs: Type.Integer({ minimum: 10, maximum: 3_600_000, default: 1000 }),
    /** PRNG seed of the generated inputs; derived from the device id when absent. */
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 2 ** 32 - 1 })),
    /**
     * The simulated machine, used when the active model takes the `cairn.vibration` features:
     * its type, its condition, and a drift scenario that unfolds from the agent's start.
     */
    machine: Type.Optional(Type.Enum(MACHINE_TYPE_NAMES, { description: 'default pump-1800' })),
    fault: Type.Optional(Type.Enum(FAULT_CLASSES)),
    severity: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    scenario: Type.Optional(Type.Enum(DRIFT_SCENARIO_KINDS)),
    /** Simulated time after the source's start at which the scenario begins (default 0). */
    scenarioStartAfterMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 31_536_000_000 })),
    /**
     * Compressed simulated time: each window advances the machine's clock by this much instead
     * of following the agent's clock, so a scenario of hours unfolds in a few hundred windows.
     */
    simulatedStepMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000 })),
  },
  closed,
);
/** Health-policy defaults for what a bundle's manifest leaves out (shared/bundle/health-policy.ts). */
export const HealthDefaultsSchema = Type.Object(
  {
    probeTolerance: Type.Optional(Type.Number({ minimum: 0, maximum: 1e6 })),
    probeLatencyMs: Type.Optional(Type.Number({ minimum: 0, maximum: 3_600_000 })),
    trial: Type.Optional(TrialSection),
  },
  closed,
);
/** Maintenance rules over the pipeline's windows (components/maintenance-rules.ts). */
export const RulesSchema = Type.Object(
  {
    threshold: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'default 0.8' })),
    windowsRequired: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'default 3' })),
    windowCount: Type.Optional(Type.Integer({ minimum: 1, maximum: 64, description: 'default 5' })),
    cooldownMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 604_800_000, description: 'default 600000' })),
  },
  closed,
);
/** On-device drift monitoring (components/drift-monitor.ts, drift-baseline.ts). */
export const DriftConfigSchema = Type.Object(
  {
    windowMs: Type.Optional(Type.Integer({ minimum: 1000, maximum: 86_400_000, description: 'sliding window; default 600000 (10 min)' })),
    buckets: Type.Optional(Type.Integer({ minimum: 1, maximum: 1440, description: 'time buckets the window is kept in; default 10' })),
    minSamples: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000, description: 'rows the window needs before PSI is reported; default 30' })),
    baselineSamples: Type.Optional(Type.Integer({ minimum: 10, maximum: 5000, description: 'first inferences that make the device baseline; default 600' })),
  },
  closed,
);
/** How the device obtains its MQTT credentials when it has none (components/device-identity.ts). */
export const EnrollmentSchema = Type.Object(
  {
    hubUrl: Type.String({ pattern: '^https?://[^\\s/]+(/.*)?$', description: 'http(s)://host:port of the hub' }),
    /** From `cairn device enroll-token`; without one the device waits for `cairn device accept`. Prefer CAIRN_AGENT_ENROLLMENT_TOKEN. */
    token: Type.Optional(Type.String({ minLength: 8, maxLength: 128 })),
  },
  closed,
);
export const NoSourceSchema = Type.Object({ kind: Type.Literal('none') }, closed);
/** JSON-lines records on the agent's stdin (components/sources/records.ts lists the formats). */
export const StdinSourceSchema = Type.Object(
  {
    kind: Type.Literal('stdin'),
    maxRecordBytes: Type.Integer({ minimum: 64, maximum: 16 * 1024 * 1024, default: 1024 * 1024, description: 'longer lines are refused as too_long' }),
  },
  closed,
);
/** mqtt://host:port or mqtts://host:port. */
const MQTT_URL = '^mqtts?://(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?/?$';
/** MQTT topic filter: `+` and `#` only as whole levels, `#` last. */
const TOPIC_FILTER = '^(?!.*#.)(?!.*[^/]#)(?!.*\\+[^/])(?!.*[^/]\\+)(?!\\$)[^\\u0000]{1,1024}$';
/** Records published to a topic of a local MQTT broker, one record per message. */
export const MqttSourceSchema = Type.Object(
  {
    kind: Type.Literal('mqtt'),
    url: Type.String({ pattern: MQTT_URL, description: 'mqtt://host:port or mqtts://host:port (the local broker)' }),
    topic: Type.String({ pattern: TOPIC_FILTER, description: 'an MQTT topic filter: + and # only as whole levels, # last, no $ topics' }),
    qos: Type.Union([Type.Literal(0), Type.Literal(1)], { default: 0 }),
    username: Type.Optional(Type.String({ minLength: 1, maxLength: 256 })),
    /** Never logged. */
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    maxQueue: Type.Integer({ minimum: 1, maximum: 100_000, default: 1024, description: 'records waiting before new ones are refused as overloaded' }),
    maxRecordBytes: Type.Integer({ minimum: 64, maximum: 16 * 1024 * 1024, default: 1024 * 1024 }),
  },
  closed,
);
const SOURCE_SCHEMAS = { simulated: SimulatedSourceSchema, stdin: StdinSourceSchema, mqtt: MqttSourceSchema, none: NoSourceSchema } as const;

export const AgentConfigSchema = Type.Object(
  {
    deviceId: DeviceId,
    stateDir: Type.String({ minLength: 1 }),
    mqttUrl: Type.String({ pattern: MQTT_URL, description: 'mqtt://host:port or mqtts://host:port' }),
    /** Ed25519 public key of the offline root (base64, 32 bytes): the pinned trust anchor. */
    rootPublicKey: PublicKeyB64,
    labels: Labels,
    api: Type.Union([ApiConfigSchema, Type.Literal(false)]),
    telemetryIntervalMs: Type.Integer({ minimum: 100, maximum: 86_400_000, default: 10_000 }),
    source: Type.Union([SimulatedSourceSchema, StdinSourceSchema, MqttSourceSchema, NoSourceSchema]),
    logLevel: Type.Enum(LOG_LEVELS, { default: 'info' }),
    health: HealthDefaultsSchema,
    rules: RulesSchema,
    drift: DriftConfigSchema,
    enrollment: Type.Optional(EnrollmentSchema),
    /** TLS towards the hub (`mqtts://` and an `https://` enrollment hubUrl): PEM file paths. */
    tls: Type.Optional(
      Type.Object(
        {
          /** CA the hub's and the broker's certificates must chain to (a private CA); the system's CAs when absent. */
          ca: Type.Optional(Type.String({ minLength: 1 })),
          /** A client certificate and its key, for a broker that requires mutual TLS. */
          cert: Type.Optional(Type.String({ minLength: 1 })),
          key: Type.Optional(Type.String({ minLength: 1 })),
        },
        closed,
      ),
    ),
  },
  closed,
);

export type AgentConfig = Static<typeof AgentConfigSchema>;
export type ApiConfig = Static<typeof ApiConfigSchema>;
export type SourceConfig = AgentConfig['source'];

const validator = Compile(AgentConfigSchema);

export interface LoadConfigOptions {
  /** YAML file; when absent only the environment is read. */
  path?: string;
  env?: NodeJS.ProcessEnv;
  /** Base of a relative stateDir when there is no file; default process.cwd(). */
  cwd?: string;
}

/** Reads, merges and validates the configuration. Throws ConfigError listing every problem. */
export function loadConfig(options: LoadConfigOptions = {}): AgentConfig {
  const problems: string[] = [];
  let fromFile: unknown = {};
  if (options.path !== undefined) {
    let text: string | undefined;
    try {
      text = readFileSync(options.path, 'utf8');
    } catch (err) {
      throw new ConfigError([`cannot read ${options.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
    }
    try {
      fromFile = parseYaml(text) ?? {};
    } catch (err) {
      throw new ConfigError([`${options.path} is not valid YAML: ${(err as Error).message.split('\n')[0]}`]);
    }
    if (typeof fromFile !== 'object' || Array.isArray(fromFile)) throw new ConfigError([`${options.path} must hold a mapping of settings`]);
  }
  const merged = structuredClone(fromFile) as Record<string, unknown>;
  applyEnvOverrides(AgentConfigSchema, ENV_PREFIX, merged, options.env ?? process.env, problems);
  const config = parseConfig(merged, problems);
  const base = options.path !== undefined ? dirname(resolve(options.path)) : (options.cwd ?? process.cwd());
  if (!isAbsolute(config.stateDir)) config.stateDir = resolve(base, config.stateDir);
  return config;
}

/**
 * Fills defaults and validates an already-merged value (used by loadConfig and by the fleet
 * simulator, which builds its configs in code). Throws ConfigError listing every problem.
 */
export function parseConfig(input: unknown, earlier: string[] = []): AgentConfig {
  const problems = [...earlier];
  const value = applyDefaults(structuredClone(input));
  if (!validator.Check(value)) problems.push(...describeConfigErrors(value));
  if (problems.length > 0) throw new ConfigError(problems);
  return value as AgentConfig;
}

function applyDefaults(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return value;
  const v = value as Record<string, unknown>;
  v.labels ??= {};
  v.api ??= {};
  v.source ??= { kind: 'none' };
  v.health ??= {};
  v.rules ??= {};
  v.drift ??= {};
  if (isPlainObject(v.api)) Value.Default(ApiConfigSchema, v.api);
  const sourceSchema = isPlainObject(v.source) ? sourceSchemaOf(v.source.kind) : undefined;
  if (sourceSchema && isPlainObject(v.source)) Value.Default(sourceSchema, v.source);
  // Top-level defaults by hand: Value.Default trips over the closed `labels` record.
  for (const [key, schema] of Object.entries(AgentConfigSchema.properties as Record<string, { default?: unknown }>)) {
    if (v[key] === undefined && schema.default !== undefined) v[key] = structuredClone(schema.default);
  }
  return v;
}

/**
 * One line per problem, named by its path. Unions are explained through the variant the value
 * means (by its `kind`, or `false` for `api`), not as a wall of anyOf errors.
 */
function describeConfigErrors(value: unknown): string[] {
  const problems: string[] = [];
  if (!isPlainObject(value)) return ['the configuration must be a mapping of settings'];
  const props = AgentConfigSchema.properties as Record<string, TSchema>;
  for (const key of Object.keys(value)) {
    if (!(key in props)) problems.push(`${key}: unknown setting`);
  }
  for (const [key, schema] of Object.entries(props)) {
    const field = value[key];
    if (field === undefined) {
      if ((AgentConfigSchema.required as string[] | undefined)?.includes(key)) problems.push(`${key}: required (or set ${envName([key])})`);
      continue;
    }
    let target: TSchema = schema;
    if (key === 'api' && field !== false) target = ApiConfigSchema;
    if (key === 'source') {
      const schema = sourceSchemaOf(isPlainObject(field) ? field.kind : undefined);
      if (!schema) {
        problems.push(`source.kind: must be one of ${Object.keys(SOURCE_SCHEMAS).join(', ')}`);
        continue;
      }
      target = schema;
    }
    for (const error of Value.Errors(target, field)) {
      if (error.keyword === 'boolean' || error.keyword === 'anyOf') {
        if (error.keyword === 'anyOf' && error.instancePath === '') problems.push(`${key}: ${describeUnion(key)}`);
        continue;
      }
      const path = [key, ...error.instancePath.split('/').filter(Boolean)].join('.');
      if (error.keyword === 'additionalProperties') {
        const extra = (error.params as { additionalProperties?: string[] }).additionalProperties ?? [];
        for (const name of extra) problems.push(key === 'labels' ? `${path}: '${name}' is not a valid label key` : `${path}.${name}: unknown setting`);
      } else if (error.keyword === 'pattern' && descriptionAt(target, error.schemaPath)) {
        problems.push(`${path}: must be ${descriptionAt(target, error.schemaPath)}`);
      } else {
        problems.push(`${path}: ${error.message}`);
      }
    }
  }
  return [...new Set(problems)];
}

/** The `description` of the schema at a JSON pointer like `#/properties/topic` (pattern errors say what was meant). */
function descriptionAt(schema: TSchema, pointer: string): string | undefined {
  let node: unknown = schema;
  for (const part of pointer.replace(/^#\/?/, '').split('/').filter(Boolean)) {
    node = isPlainObject(node) ? node[part.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined;
  }
  return isPlainObject(node) && typeof node.description === 'string' ? node.description : undefined;
}

function sourceSchemaOf(kind: unknown): TSchema | undefined {
  return typeof kind === 'string' && Object.hasOwn(SOURCE_SCHEMAS, kind) ? SOURCE_SCHEMAS[kind as keyof typeof SOURCE_SCHEMAS] : undefined;
}

function describeUnion(key: string): string {
  if (key === 'logLevel') return `must be one of ${LOG_LEVELS.join(', ')}`;
  return 'has an invalid value';
}

/** `api.port` → `CAIRN_AGENT_API_PORT`. */
export function envName(path: string[]): string {
  return sharedEnvName(ENV_PREFIX, path);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
