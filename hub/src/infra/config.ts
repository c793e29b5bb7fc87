/**
 * Hub configuration: defaults ← YAML file ← environment ← explicit overrides (CLI flags), then
 * validated against one TypeBox schema with every error listed at once.
 *
 * Environment variables are derived from the schema path (shared/src/config/env-overrides.ts):
 * `http.port` ↔ `CAIRN_HTTP_PORT`, `dataDir` ↔ `CAIRN_DATA_DIR`.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { Type, type Static } from 'typebox';
import { applyEnvOverrides } from '@cairn/shared';
import { Compile } from 'typebox/compile';
import { Value } from 'typebox/value';
import { parse as parseYaml } from 'yaml';

export const ENV_PREFIX = 'CAIRN';
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const Port = Type.Integer({ minimum: 0, maximum: 65535 });
/** What a webhook endpoint can subscribe to (modules/webhooks): work-order events by default, alert events opt-in. */
export const WEBHOOK_EVENT_TYPES = ['work_order.opened', 'work_order.acknowledged', 'work_order.done', 'alert.opened', 'alert.updated', 'alert.acknowledged', 'alert.resolved'] as const;

export const HubConfigSchema = Type.Object(
  {
    dataDir: Type.String({ minLength: 1, default: './data' }),
    logLevel: Type.Enum(LOG_LEVELS, { default: 'info' }),
    http: Type.Object(
      { host: Type.String({ default: '127.0.0.1' }), port: { ...Port, default: 8080 }, bodyLimitMb: Type.Integer({ minimum: 1, maximum: 4096, default: 256 }) },
      { additionalProperties: false, default: {} },
    ),
    mqtt: Type.Object(
      {
        host: Type.String({ default: '127.0.0.1' }),
        port: { ...Port, default: 1883 },
        /** The URL agents are told to connect to (GET /api/v1/trust); defaults to `broker`, else mqtt://host:port. */
        publicUrl: Type.Optional(Type.String({ pattern: '^mqtts?://' })),
        /**
         * An external broker (Mosquitto…) the hub joins as a client instead of embedding aedes;
         * `host`, `port` and `rateLimit` then do not apply. Its files: `cairn broker config`.
         */
        broker: Type.Optional(Type.String({ pattern: '^mqtts?://' })),
        /** Publishes per second one device may make (token bucket); a flood closes its connection. */
        rateLimit: Type.Object(
          { perSec: Type.Number({ exclusiveMinimum: 0, default: 100 }), burst: Type.Integer({ minimum: 1, default: 400 }) },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    /**
     * TLS for HTTPS and MQTT over TLS (the embedded broker; an external broker's `mqtts://` URL
     * is trusted through `ca`). PEM file paths; TLS is on when `cert` and `key` are given.
     */
    tls: Type.Object(
      {
        cert: Type.Optional(Type.String({ minLength: 1 })),
        key: Type.Optional(Type.String({ minLength: 1 })),
        /** CA certificates: devices' client certificates must chain to them, and the hub trusts them for an external `mqtts://` broker. */
        ca: Type.Optional(Type.String({ minLength: 1 })),
        /** Mutual TLS for devices: the embedded broker refuses a TLS client without a certificate from `ca` (HTTPS does not ask: browsers have none). */
        requireClientCert: Type.Boolean({ default: false }),
      },
      { additionalProperties: false, default: {} },
    ),
    desired: Type.Object(
      {
        /** Lifetime of a signed desired document; agents refuse expired ones (freeze attacks). */
        ttlHours: Type.Number({ exclusiveMinimum: 0, default: 168 }),
        /** Live documents expiring within this many hours are re-signed by the hourly job. */
        resignWithinHours: Type.Number({ exclusiveMinimum: 0, default: 72 }),
      },
      { additionalProperties: false, default: {} },
    ),
    console: Type.Object({ dir: Type.Optional(Type.String()) }, { additionalProperties: false, default: {} }),
    auth: Type.Object(
      {
        /** Marks the session cookie `Secure`. Default: on when the hub serves HTTPS (`tls`); turn it on behind a TLS proxy. */
        cookieSecure: Type.Optional(Type.Boolean()),
        /** A console session ends after this long without a request… */
        sessionIdleMinutes: Type.Number({ exclusiveMinimum: 0, default: 60 }),
        /** …and this long after login, whatever the activity. */
        sessionAbsoluteHours: Type.Number({ exclusiveMinimum: 0, default: 12 }),
        /** Consecutive failed logins (per username and per source address) before a lockout. */
        loginMaxFailures: Type.Integer({ minimum: 1, default: 5 }),
        /** The first lockout; each further failure doubles it, up to loginMaxLockoutSeconds. */
        loginLockoutSeconds: Type.Number({ exclusiveMinimum: 0, default: 30 }),
        loginMaxLockoutSeconds: Type.Number({ exclusiveMinimum: 0, default: 900 }),
      },
      { additionalProperties: false, default: {} },
    ),
    rollouts: Type.Object(
      {
        /** How often the rollout engine re-evaluates (bake times, timeouts, windows, joiners); reports also trigger it. */
        tickSeconds: Type.Integer({ minimum: 1, maximum: 60, default: 5 }),
      },
      { additionalProperties: false, default: {} },
    ),
    telemetry: Type.Object(
      {
        /** Raw summaries are kept this long; per-minute rollups `minuteRetentionDays`, per-hour `hourRetentionDays`. */
        rawRetentionDays: Type.Number({ exclusiveMinimum: 0, default: 7 }),
        minuteRetentionDays: Type.Number({ exclusiveMinimum: 0, default: 30 }),
        hourRetentionDays: Type.Number({ exclusiveMinimum: 0, default: 400 }),
        /** Ingest batching: a batch commits at this many summaries or after this long, whichever comes first. */
        batchMaxRows: Type.Integer({ minimum: 1, maximum: 10_000, default: 2000 }),
        batchMaxDelayMs: Type.Integer({ minimum: 0, maximum: 1000, default: 20 }),
        /** A series query asking for more points than this is refused (400 naming the limit). */
        maxQueryPoints: Type.Integer({ minimum: 10, maximum: 100_000, default: 2000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    alerts: Type.Object(
      {
        /** A device offline this long raises an `offline` alert; resolved when it is back. */
        offlineAfterSeconds: Type.Integer({ minimum: 1, default: 300 }),
        /** Drift hysteresis: consecutive summaries at `alert` to open, consecutive `ok` to resolve; `warn` holds the state (modules/alerts/drift-hysteresis.ts). */
        driftOpenAfter: Type.Integer({ minimum: 1, default: 2 }),
        driftResolveAfter: Type.Integer({ minimum: 1, default: 6 }),
        /** An online device with no telemetry for this many of its own intervals (or a seq gap) raises `ingest_gap`. */
        ingestGapIntervals: Type.Integer({ minimum: 2, default: 5 }),
        /** How often the alert checks that need a clock (offline, ingest gaps) run. */
        checkSeconds: Type.Integer({ minimum: 1, maximum: 300, default: 15 }),
      },
      { additionalProperties: false, default: {} },
    ),
    webhooks: Type.Object(
      {
        /** Receivers of work orders and alerts. `secret` signs each delivery (HMAC-SHA256); it is never logged nor returned by the API. */
        endpoints: Type.Array(
          Type.Object(
            {
              name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,63}$' }),
              url: Type.String({ pattern: '^https?://' }),
              secret: Type.String({ minLength: 16 }),
              /** Event types delivered (`work_order.opened`, `alert.opened`, …); default: every work-order event. */
              events: Type.Optional(Type.Array(Type.Enum(WEBHOOK_EVENT_TYPES), { minItems: 1 })),
            },
            { additionalProperties: false },
          ),
          { default: [] },
        ),
        /** Delivery attempts per event and endpoint before it is marked failed; backoff doubles from `retryBaseMs` up to `retryMaxMs`. */
        maxAttempts: Type.Integer({ minimum: 1, maximum: 100, default: 12 }),
        retryBaseMs: Type.Integer({ minimum: 10, default: 1000 }),
        retryMaxMs: Type.Integer({ minimum: 100, default: 600_000 }),
        timeoutMs: Type.Integer({ minimum: 100, default: 10_000 }),
      },
      { additionalProperties: false, default: {} },
    ),
    /** The live stream (`GET /api/v1/stream`, server-sent events) and its resumable journal. */
    stream: Type.Object(
      {
        /** The journal keeps at most this many events and none older than `journalMaxAgeHours`; a client behind that gets `reset`. */
        journalMaxEvents: Type.Integer({ minimum: 100, default: 100_000 }),
        journalMaxAgeHours: Type.Number({ exclusiveMinimum: 0, default: 24 }),
        /** A comment line this often keeps proxies and idle-timeouts from closing a quiet stream. */
        heartbeatSeconds: Type.Number({ exclusiveMinimum: 0, maximum: 300, default: 15 }),
        /** The reconnection delay suggested to clients (`retry:`). */
        retryMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 3000 }),
        /** A client with more than this many bytes written but not yet taken by its socket is dropped (it resumes with Last-Event-ID). */
        clientMaxBufferedBytes: Type.Integer({ minimum: 1024, default: 4 * 1024 * 1024 }),
      },
      { additionalProperties: false, default: {} },
    ),
    approval: Type.Object(
      {
        /** How many devices an unapproved model version may run on at most (the canary). */
        canaryDevices: Type.Integer({ minimum: 0, default: 1 }),
      },
      { additionalProperties: false, default: {} },
    ),
  },
  { additionalProperties: false },
);

export type HubConfig = Static<typeof HubConfigSchema>;
/** Any subset of the config, as given by a file, the environment or CLI flags. */
export type HubConfigInput = { [K in keyof HubConfig]?: HubConfig[K] extends object ? Partial<HubConfig[K]> : HubConfig[K] };

const validator = Compile(HubConfigSchema);

export class ConfigError extends Error {
  readonly code = 'CAIRN_CONFIG_INVALID';
  constructor(readonly problems: string[]) {
    super(`invalid hub configuration:\n  - ${problems.join('\n  - ')}`);
  }
}

export interface LoadConfigOptions {
  file?: string;
  env?: NodeJS.ProcessEnv;
  overrides?: HubConfigInput;
}

export function loadHubConfig({ file, env = process.env, overrides = {} }: LoadConfigOptions = {}): HubConfig {
  const problems: string[] = [];
  let fromFile: unknown = {};
  if (file) {
    try {
      fromFile = parseYaml(readFileSync(file, 'utf8')) ?? {};
    } catch (err) {
      problems.push(`${file}: ${(err as Error).message}`);
    }
  }
  const fromEnv: Record<string, unknown> = {};
  applyEnvOverrides(HubConfigSchema, ENV_PREFIX, fromEnv, env, problems);
  const merged = deepMerge(deepMerge(isObject(fromFile) ? fromFile : {}, fromEnv), overrides as Record<string, unknown>);
  const withDefaults = Value.Default(HubConfigSchema, merged);
  if (!validator.Check(withDefaults)) {
    for (const e of validator.Errors(withDefaults)) {
      if (e.keyword === 'boolean') continue;
      problems.push(`${e.instancePath || '/'}: ${e.message}${e.keyword === 'additionalProperties' ? ` (${JSON.stringify(e.params)})` : ''}`);
    }
  }
  const config = withDefaults as HubConfig;
  if ((config.tls?.cert === undefined) !== (config.tls?.key === undefined)) problems.push('/tls: give both cert and key, or neither');
  if (config.tls?.requireClientCert && (config.tls.ca === undefined || config.tls.cert === undefined)) problems.push('/tls/requireClientCert: needs tls.cert, tls.key and tls.ca (the CA client certificates must chain to)');
  const names = (config.webhooks?.endpoints ?? []).map((e) => e.name);
  for (const name of new Set(names.filter((n, i) => names.indexOf(n) !== i))) problems.push(`/webhooks/endpoints: the name ${name} is used twice`);
  // The URL may hold credentials: a problem names the endpoint, never the URL.
  for (const endpoint of config.webhooks?.endpoints ?? []) {
    if (!URL.canParse(endpoint.url)) problems.push(`/webhooks/endpoints: the url of ${endpoint.name} is not a valid URL`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return { ...config, dataDir: resolve(config.dataDir) };
}

/** Whether the hub serves HTTPS and MQTT over TLS. */
export function tlsEnabled(config: HubConfig): boolean {
  return config.tls.cert !== undefined && config.tls.key !== undefined;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    if (v === undefined) continue;
    out[k] = isObject(v) && isObject(out[k]) ? deepMerge(out[k] as Record<string, unknown>, v) : v;
  }
  return out;
}
