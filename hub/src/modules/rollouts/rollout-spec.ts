/**
 * What an operator asks for when creating a rollout: the request schema (`RolloutRequest`, the
 * HTTP body) and `normalizeRolloutSpec`, which checks what a schema cannot (units, increasing
 * stages, durations, the maintenance window's cron expression and time zone) and turns the
 * request into the stored `RolloutSpec` with every default filled in. Every refusal names the
 * field (`stages[2].size`), so a CLI user or the console wizard can point at it.
 */
import { Type, type Static } from 'typebox';
import { CronExpressionParser } from 'cron-parser';
import { HubError } from '../../infra/errors.js';

/** Defaults of a stage; chosen so that one failing device in a canary trips the breach policy. */
export const STAGE_DEFAULTS = {
  successThreshold: 95,
  failureThreshold: 5,
  bakeMs: 0,
  timeoutMs: 30 * 60_000,
} as const;

const Percent = Type.Number({ minimum: 0, maximum: 100 });
const Duration = Type.String({ maxLength: 16, description: 'e.g. 30s, 10m, 2h, 1d' });

export const GatesRequest = Type.Object(
  {
    /** Max increase of the updated devices' median drift PSI over the control group's (absolute when there is no control group). */
    driftPsi: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    /** Max ratio of the updated devices' median p95 latency to the control group's. */
    latencyP95Ratio: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1000 })),
    /** Max increase of the error rate, in percentage points. */
    errorRateDelta: Type.Optional(Percent),
    /** Max increase of maintenance alerts per device-hour. */
    alertRateDelta: Type.Optional(Type.Number({ minimum: 0, maximum: 1e6 })),
    /** Telemetry summaries a group needs before a gate judges it (default 3). */
    minSamples: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
  },
  { additionalProperties: false },
);

export const StageRequest = Type.Object(
  {
    /** Cumulative size: "10%" of the cohort or a device count. */
    size: Type.Union([Type.String({ pattern: '^\\d+(\\.\\d+)?%$' }), Type.Integer({ minimum: 1, maximum: 1_000_000 })]),
    /** Share (%) of the stage's devices that must have committed before the next stage. */
    successThreshold: Type.Optional(Percent),
    /** Share (%) of failed or rolled-back devices above which the breach policy trips. */
    failureThreshold: Type.Optional(Percent),
    /** How long the stage must stay healthy after reaching its success threshold. */
    bake: Type.Optional(Duration),
    /** After this long without a final report, a device counts as timed out (not as pending). */
    timeout: Type.Optional(Duration),
    gates: Type.Optional(GatesRequest),
  },
  { additionalProperties: false },
);

export const RolloutRequest = Type.Object(
  {
    model: Type.String({ maxLength: 200, description: 'name@version' }),
    selector: Type.Optional(Type.String({ maxLength: 4096 })),
    deviceIds: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 100_000 })),
    stages: Type.Array(StageRequest, { minItems: 1, maxItems: 20 }),
    breachPolicy: Type.Optional(Type.Union([Type.Literal('pause'), Type.Literal('rollback')])),
    /** At most this many devices are told to change per minute. */
    rateLimit: Type.Optional(Type.Object({ devicesPerMinute: Type.Integer({ minimum: 1, maximum: 1_000_000 }) }, { additionalProperties: false })),
    /** Start at this time (ISO 8601) instead of at once. */
    startAt: Type.Optional(Type.String({ maxLength: 40 })),
    /** Devices are only told to change while the window is open: from each cron occurrence, for `duration`. */
    window: Type.Optional(
      Type.Object({ cron: Type.String({ maxLength: 120 }), duration: Duration, timezone: Type.Optional(Type.String({ maxLength: 64 })) }, { additionalProperties: false }),
    ),
    /** false: create only; `POST …/start` starts it. */
    start: Type.Optional(Type.Boolean()),
    description: Type.Optional(Type.String({ maxLength: 500 })),
  },
  { additionalProperties: false },
);
export type RolloutRequestT = Static<typeof RolloutRequest>;

export interface Gates {
  driftPsi?: number;
  latencyP95Ratio?: number;
  errorRateDelta?: number;
  alertRateDelta?: number;
  minSamples: number;
}

export interface StageSpec {
  size: { percent: number } | { count: number };
  successThreshold: number;
  failureThreshold: number;
  bakeMs: number;
  timeoutMs: number;
  gates: Gates | null;
}

export interface MaintenanceWindow {
  cron: string;
  durationMs: number;
  timezone: string;
}

export type RolloutTarget = { selector: string } | { deviceIds: string[] };

/** The stored, normalized spec. */
export interface RolloutSpec {
  target: RolloutTarget;
  stages: StageSpec[];
  breachPolicy: 'pause' | 'rollback';
  devicesPerMinute: number | null;
  startAt: number | null;
  window: MaintenanceWindow | null;
  description: string | null;
}

export const rolloutInvalid = (field: string, message: string) => new HubError('CAIRN_ROLLOUT_INVALID', 400, `${field}: ${message}`);

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MAX_DURATION_MS = 30 * 86_400_000;

/** "90s", "10m", "1.5h", "0" → milliseconds; null when it is not a duration. */
export function parseDuration(text: string): number | null {
  if (text === '0') return 0;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)$/.exec(text.trim());
  if (!match) return null;
  const ms = Math.round(Number(match[1]) * UNIT_MS[match[2]!]!);
  return Number.isFinite(ms) && ms <= MAX_DURATION_MS ? ms : null;
}

function duration(field: string, text: string | undefined, fallback: number): number {
  if (text === undefined) return fallback;
  const ms = parseDuration(text);
  if (ms === null) throw rolloutInvalid(field, `${JSON.stringify(text)} is not a duration of at most 30d (e.g. 30s, 10m, 2h)`);
  return ms;
}

export function isValidTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

/** Checks the parts of a request a schema cannot and fills in the defaults. `now` resolves nothing; it only refuses a `startAt` in the distant past. */
export function normalizeRolloutSpec(request: RolloutRequestT): RolloutSpec {
  if ((request.selector === undefined) === (request.deviceIds === undefined)) throw rolloutInvalid('selector', 'give exactly one of selector or deviceIds');
  if (request.selector !== undefined && request.selector.trim() === '') throw rolloutInvalid('selector', 'an empty selector would match every device; write the labels that pick the cohort');
  const stages = request.stages.map((s, i): StageSpec => {
    const field = `stages[${i}]`;
    let size: StageSpec['size'];
    if (typeof s.size === 'string') {
      const percent = Number(s.size.slice(0, -1));
      if (!(percent > 0 && percent <= 100)) throw rolloutInvalid(`${field}.size`, `${s.size} is not a share between 0 % (excluded) and 100 %`);
      size = { percent };
    } else {
      size = { count: s.size };
    }
    return {
      size,
      successThreshold: s.successThreshold ?? STAGE_DEFAULTS.successThreshold,
      failureThreshold: s.failureThreshold ?? STAGE_DEFAULTS.failureThreshold,
      bakeMs: duration(`${field}.bake`, s.bake, STAGE_DEFAULTS.bakeMs),
      timeoutMs: duration(`${field}.timeout`, s.timeout, STAGE_DEFAULTS.timeoutMs),
      gates: s.gates ? { ...s.gates, minSamples: s.gates.minSamples ?? 3 } : null,
    };
  });
  // Stages are cumulative, so within a unit each must be larger than the one before.
  let lastPercent = 0;
  let lastCount = 0;
  stages.forEach((s, i) => {
    if ('percent' in s.size) {
      if (s.size.percent <= lastPercent) throw rolloutInvalid(`stages[${i}].size`, `stages are cumulative and must increase: ${s.size.percent}% after ${lastPercent}%`);
      lastPercent = s.size.percent;
    } else {
      if (s.size.count <= lastCount) throw rolloutInvalid(`stages[${i}].size`, `stages are cumulative and must increase: ${s.size.count} devices after ${lastCount}`);
      lastCount = s.size.count;
    }
  });
  let startAt: number | null = null;
  if (request.startAt !== undefined) {
    startAt = Date.parse(request.startAt);
    if (!Number.isFinite(startAt) || !/^\d{4}-\d{2}-\d{2}T/.test(request.startAt)) throw rolloutInvalid('startAt', `${JSON.stringify(request.startAt)} is not an ISO 8601 time`);
  }
  let window: MaintenanceWindow | null = null;
  if (request.window) {
    const timezone = request.window.timezone ?? 'UTC';
    if (!isValidTimeZone(timezone)) throw rolloutInvalid('window.timezone', `${JSON.stringify(timezone)} is not an IANA time zone (e.g. Europe/Berlin)`);
    try {
      CronExpressionParser.parse(request.window.cron, { tz: timezone, strict: false });
    } catch (err) {
      throw rolloutInvalid('window.cron', `${JSON.stringify(request.window.cron)} is not a cron expression: ${(err as Error).message}`);
    }
    if (request.window.cron.trim().split(/\s+/).length > 5) throw rolloutInvalid('window.cron', 'use five fields (minute hour day month weekday); windows open at whole minutes');
    const durationMs = duration('window.duration', request.window.duration, 0);
    if (durationMs < 60_000) throw rolloutInvalid('window.duration', 'a maintenance window lasts at least 1m');
    window = { cron: request.window.cron, durationMs, timezone };
  }
  return {
    target: request.selector !== undefined ? { selector: request.selector } : { deviceIds: [...new Set(request.deviceIds!)] },
    stages,
    breachPolicy: request.breachPolicy ?? 'pause',
    devicesPerMinute: request.rateLimit?.devicesPerMinute ?? null,
    startAt,
    window,
    description: request.description ?? null,
  };
}
