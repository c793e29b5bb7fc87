/**
 * The one typed map from topic kind to payload, and the compiled validators both sides use on
 * receipt. Validators are compiled once at module load.
 */
import { Compile } from 'typebox/compile';
import type { Static, TSchema } from 'typebox';
import * as S from './schemas.js';
import { MAX_JSON_PAYLOAD_BYTES } from './limits.js';

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

/** Why a payload was refused; used as a metric label, so the set is closed. */
export type PayloadRejection = 'too_large' | 'not_json' | 'schema';

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
  return checkValue(validators.get(kind)!, value) as Decoded<PayloadOf<K>>;
}

/** Validates an already-parsed value against any schema; the message lists every error. */
export function checkValue<T>(validator: Validator, value: unknown): Decoded<T> {
  if (validator.Check(value)) return { ok: true, value: value as T };
  return { ok: false, reason: 'schema', message: describeErrors(validator, value) };
}

export function describeErrors(validator: Validator, value: unknown, max = 5): string {
  const errors = validator.Errors(value).filter((e) => e.keyword !== 'boolean');
  const parts = errors.slice(0, max).map((e) => `${e.instancePath || '/'} ${e.message}`);
  if (errors.length > max) parts.push(`and ${errors.length - max} more`);
  return parts.join('; ') || 'does not match the schema';
}

/** Serializes a payload after checking it, so that a producer bug is caught at the sender. */
export function encodePayload<K extends JsonTopicKind>(kind: K, value: PayloadOf<K>): Buffer {
  const checked = checkValue(validators.get(kind)!, value);
  if (!checked.ok) throw new Error(`refusing to send an invalid ${kind} payload: ${checked.message}`);
  return Buffer.from(JSON.stringify(value));
}

export { Compile };
