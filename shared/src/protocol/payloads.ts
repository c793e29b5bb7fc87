/**
 * The one typed map from topic kind to payload, and the compiled validators both sides use on
 * receipt. Validators are compiled once at module load.
 */
import { Compile } from 'typebox/compile';
import type { Static, TSchema } from 'typebox';
import * as S from './schemas.js';
import { MAX_JSON_DEPTH, MAX_JSON_PAYLOAD_BYTES } from './limits.js';

/** JSON payload schema of each topic kind (blob/res is binary: see blob-frame.ts). */
export const PAYLOAD_SCHEMAS = {
  presence: S.Presence,
  reported: S.Reported,
  telemetry: S.Telemetry,
  events: S.DeviceEvent,
  'blob/req': S.BlobRequest,
  desired: S.SignedDesired,
  cmd: S.Command,
  'cmd/res': S.CommandResult,
} as const;

export type JsonTopicKind = keyof typeof PAYLOAD_SCHEMAS;
export type PayloadOf<K extends JsonTopicKind> = Static<(typeof PAYLOAD_SCHEMAS)[K]>;

type Validator = ReturnType<typeof Compile>;
const validators = new Map<JsonTopicKind, Validator>(
  (Object.keys(PAYLOAD_SCHEMAS) as JsonTopicKind[]).map((k) => [k, Compile(PAYLOAD_SCHEMAS[k] as TSchema)]),
);

/**
 * Why a schema check failed, from its first (innermost) error: a field the closed schema does not
 * know, a required field missing, a value of the wrong type, a number or size outside its range;
 * `schema` for the rest (a pattern, an enum, a union none of whose members matched).
 */
export const SCHEMA_REJECTIONS = ['unknown_field', 'missing_field', 'wrong_type', 'out_of_range', 'schema'] as const;
export type SchemaRejection = (typeof SCHEMA_REJECTIONS)[number];

/** Why a payload was refused; used as a metric label, so the set is closed. */
export type PayloadRejection = 'too_large' | 'not_json' | 'too_deep' | 'not_canonical' | SchemaRejection;

export type Decoded<T> = { ok: true; value: T } | { ok: false; reason: PayloadRejection; message: string };

/** Parses and validates one JSON payload of a topic kind. Never throws. */
export function decodePayload<K extends JsonTopicKind>(kind: K, payload: Uint8Array | string): Decoded<PayloadOf<K>> {
  const size = typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength;
  if (size > MAX_JSON_PAYLOAD_BYTES) {
    return { ok: false, reason: 'too_large', message: `payload of ${size} bytes exceeds ${MAX_JSON_PAYLOAD_BYTES}` };
  }
  // A Buffer decodes in place (Buffer.from(buffer) would copy every payload first).
  const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    return { ok: false, reason: 'not_json', message: (err as Error).message };
  }
  // Bytes decoded as UTF-8 never hold a lone surrogate (invalid sequences become U+FFFD), so
  // from bytes only a `\u` escape can make one: without one, the strings need no scan.
  const problem = canonicalJsonProblem(value, MAX_JSON_DEPTH, typeof payload === 'string' || text.includes('\\u'));
  if (problem) return { ok: false, ...problem };
  return checkValue(validators.get(kind)!, value) as Decoded<PayloadOf<K>>;
}

/** Validates an already-parsed value against any schema; the message lists every error. */
export function checkValue<T>(validator: Validator, value: unknown): Decoded<T> {
  if (validator.Check(value)) return { ok: true, value: value as T };
  return { ok: false, reason: schemaRejection(validator, value), message: describeErrors(validator, value) };
}

const RANGE_KEYWORDS = new Set(['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'minItems', 'maxItems', 'minProperties', 'maxProperties', 'multipleOf']);

function schemaRejection(validator: Validator, value: unknown): SchemaRejection {
  const first = validator.Errors(value).find((e) => e.keyword !== 'boolean');
  switch (first?.keyword) {
    case 'additionalProperties':
      return 'unknown_field';
    case 'required':
      return 'missing_field';
    case 'type':
      return 'wrong_type';
    default:
      return first && RANGE_KEYWORDS.has(first.keyword) ? 'out_of_range' : 'schema';
  }
}

export function describeErrors(validator: Validator, value: unknown, max = 5): string {
  const errors = validator.Errors(value).filter((e) => e.keyword !== 'boolean');
  const parts = errors.slice(0, max).map((e) => `${e.instancePath || '/'} ${e.message}`);
  if (errors.length > max) parts.push(`and ${errors.length - max} more`);
  return parts.join('; ') || 'does not match the schema';
}

/**
 * Why a parsed JSON value cannot be signed or verified, or null. Signatures cover RFC 8785
 * canonical JSON, which has no form for a number JSON.parse turned into Infinity (`1e400`) or for
 * a lone UTF-16 surrogate (`"\ud800"`), and whose serializer recurses: a value nested a few
 * thousand levels deep overflows the stack. Refusing these on receipt keeps every accepted value
 * signable, storable and loggable. The walk recurses, but never below `maxDepth` levels: it
 * refuses a deeper value before descending into it, so it is safe on exactly the values it
 * refuses, and it allocates nothing (it runs for every device message). `checkStrings: false`
 * skips the surrogate scan, for callers that know no string can hold one.
 */
export function canonicalJsonProblem(value: unknown, maxDepth = MAX_JSON_DEPTH, checkStrings = true): { reason: 'too_deep' | 'not_canonical'; message: string } | null {
  const problem = walk(value, 0, maxDepth, checkStrings);
  switch (problem) {
    case null:
      return null;
    case 'too_deep':
      return { reason: 'too_deep', message: `nested deeper than ${maxDepth} levels` };
    case 'infinite':
      return { reason: 'not_canonical', message: 'a number too large to represent' };
    case 'surrogate':
      return { reason: 'not_canonical', message: 'a string with a lone UTF-16 surrogate' };
  }
}

type WalkProblem = 'too_deep' | 'infinite' | 'surrogate' | null;

/** `depth`: the nesting level of `v` (the root is 0); containers at `maxDepth` are refused. */
function walk(v: unknown, depth: number, maxDepth: number, checkStrings: boolean): WalkProblem {
  if (typeof v === 'number') return Number.isFinite(v) ? null : 'infinite';
  if (typeof v === 'string') return checkStrings && LONE_SURROGATE.test(v) ? 'surrogate' : null;
  if (typeof v !== 'object' || v === null) return null;
  if (depth + 1 > maxDepth) return 'too_deep';
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const problem = walk(v[i], depth + 1, maxDepth, checkStrings);
      if (problem) return problem;
    }
    return null;
  }
  for (const key of Object.keys(v)) {
    if (checkStrings && LONE_SURROGATE.test(key)) return 'surrogate';
    const problem = walk((v as Record<string, unknown>)[key], depth + 1, maxDepth, checkStrings);
    if (problem) return problem;
  }
  return null;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** Serializes a payload after checking it, so that a producer bug is caught at the sender. */
export function encodePayload<K extends JsonTopicKind>(kind: K, value: PayloadOf<K>): Buffer {
  const checked = checkValue(validators.get(kind)!, value);
  if (!checked.ok) throw new Error(`refusing to send an invalid ${kind} payload: ${checked.message}`);
  return Buffer.from(JSON.stringify(value));
}

export { Compile };
