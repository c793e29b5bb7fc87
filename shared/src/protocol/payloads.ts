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
  let value: unknown;
  try {
    value = JSON.parse(typeof payload === 'string' ? payload : Buffer.from(payload).toString('utf8'));
  } catch (err) {
    return { ok: false, reason: 'not_json', message: (err as Error).message };
  }
  const problem = canonicalJsonProblem(value);
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
 * signable, storable and loggable. Iterative, so it is safe on exactly the values it refuses.
 */
export function canonicalJsonProblem(value: unknown, maxDepth = MAX_JSON_DEPTH): { reason: 'too_deep' | 'not_canonical'; message: string } | null {
  const stack: Array<{ value: unknown; depth: number }> = [{ value, depth: 0 }];
  while (stack.length > 0) {
    const { value: v, depth } = stack.pop()!;
    if (typeof v === 'number') {
      if (!Number.isFinite(v)) return { reason: 'not_canonical', message: 'a number too large to represent' };
    } else if (typeof v === 'string') {
      if (LONE_SURROGATE.test(v)) return { reason: 'not_canonical', message: 'a string with a lone UTF-16 surrogate' };
    } else if (typeof v === 'object' && v !== null) {
      if (depth + 1 > maxDepth) return { reason: 'too_deep', message: `nested deeper than ${maxDepth} levels` };
      if (Array.isArray(v)) {
        for (const child of v) stack.push({ value: child, depth: depth + 1 });
      } else {
        for (const [key, child] of Object.entries(v)) stack.push({ value: key, depth: depth + 1 }, { value: child, depth: depth + 1 });
      }
    }
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
