/**
 * Structure-aware fast-check generators for the fuzz suites: payloads that look like the real
 * thing and are wrong in the ways an attacker or a broken device would make them wrong (a field
 * of the wrong type, a missing or unknown field, huge and non-finite numbers, hostile unicode,
 * deep nesting, truncated or oversized text), rather than random bytes that every parser refuses
 * at its first character.
 *
 * `mutatedJson(valid)` takes an arbitrary of valid values and yields the bytes of a case: about a
 * fifth of them valid as generated, the rest mutated at the value or at the text level.
 */
import fc from 'fast-check';
import { MAX_JSON_PAYLOAD_BYTES } from '@cairn/shared';

/** Arrays nested `depth` levels deep, as JSON text (JSON.stringify itself overflows on deep values). */
export function nestedText(depth: number, open = '[', close = ']'): string {
  return open.repeat(depth) + close.repeat(depth);
}

/** Own `__proto__` and `constructor` keys, as JSON.parse makes them (an object literal would set the prototype instead). */
const pollution = JSON.parse('{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}') as unknown;

/** Single values that break careless code. */
export const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom<unknown>(
    null, true, false, 0, -1, -0.5, 1.5, 2 ** 31, 2 ** 32 + 1, 2 ** 53 + 2, 1e21, Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE,
    '', ' ', '\u0000', '\ud800', '\u202e', '\ufeff', 'ℌ𝔢𝔩𝔩𝔬', '💥💥', '__proto__', 'constructor', '../../etc/passwd', '%00', 'a'.repeat(5000),
    [], {}, [[]], [null], pollution,
  ),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.integer({ min: 2, max: 200 }).map((depth) => JSON.parse(nestedText(depth)) as unknown),
);

type Path = Array<string | number>;

/** Every path to an object or array inside `value` (the root included), down to `maxDepth`. */
function containerPaths(value: unknown, maxDepth = 4, path: Path = []): Path[] {
  if (typeof value !== 'object' || value === null || path.length > maxDepth) return [];
  const children = Array.isArray(value) ? value.map((v, i) => [i, v] as const) : Object.entries(value);
  return [path, ...children.flatMap(([k, v]) => containerPaths(v, maxDepth, [...path, k]))];
}

function at(value: unknown, path: Path): unknown {
  return path.reduce<unknown>((v, k) => (v as Record<string | number, unknown>)[k], value);
}

type ValueMutation = 'set' | 'delete' | 'add' | 'replace_root' | 'wrap';
const VALUE_MUTATIONS: ValueMutation[] = ['set', 'set', 'set', 'delete', 'delete', 'add', 'add', 'replace_root', 'wrap'];

/** One value-level mutation of a copy of `value`. */
function mutateValue(value: unknown, pick: number, mutation: ValueMutation, hostile: unknown, key: string): unknown {
  const copy = structuredClone(value);
  if (mutation === 'replace_root') return hostile;
  if (mutation === 'wrap') return [copy];
  const paths = containerPaths(copy);
  if (paths.length === 0) return hostile;
  const container = at(copy, paths[pick % paths.length]!) as Record<string | number, unknown>;
  const keys = Object.keys(container);
  if (mutation === 'add' || keys.length === 0) {
    if (Array.isArray(container)) container.push(hostile);
    else container[key] = hostile;
    return copy;
  }
  const target = keys[pick % keys.length]!;
  if (mutation === 'delete') {
    if (Array.isArray(container)) container.splice(Number(target), 1);
    else delete container[target];
  } else {
    container[target] = hostile;
  }
  return copy;
}

type TextMutation = 'truncate' | 'huge_number' | 'insert_char' | 'deep' | 'invalid_utf8' | 'duplicate_key' | 'bom';
const TEXT_MUTATIONS: TextMutation[] = ['truncate', 'truncate', 'huge_number', 'huge_number', 'insert_char', 'deep', 'deep', 'invalid_utf8', 'duplicate_key', 'bom'];
const HUGE_NUMBERS = ['1e400', '-1e400', '123456789012345678901234567890', '1e-400', '-0', '0.1e1', '9007199254740993'];

/** One text-level mutation of a JSON text (what a truncated frame or a hand-made payload looks like). */
function mutateText(text: string, pick: number, mutation: TextMutation, char: string): Buffer {
  const position = pick % (text.length + 1);
  switch (mutation) {
    case 'truncate':
      return Buffer.from(text.slice(0, position));
    case 'huge_number': {
      const numbers = [...text.matchAll(/-?\d+(\.\d+)?([eE][+-]?\d+)?/g)];
      const huge = HUGE_NUMBERS[pick % HUGE_NUMBERS.length]!;
      if (numbers.length === 0) return Buffer.from(`${text.slice(0, position)}${huge}${text.slice(position)}`);
      const n = numbers[pick % numbers.length]!;
      return Buffer.from(text.slice(0, n.index) + huge + text.slice(n.index + n[0].length));
    }
    case 'insert_char':
      return Buffer.from(text.slice(0, position) + char + text.slice(position));
    case 'deep': {
      // A few thousand levels: parses fine, overflows any recursive walk.
      const depth = 500 + (pick % 4000);
      return Buffer.from(text.startsWith('{') ? `{"deep":${nestedText(depth)},${text.slice(1)}` : nestedText(depth));
    }
    case 'invalid_utf8': {
      const bytes = Buffer.from(text);
      const at = pick % (bytes.length + 1);
      return Buffer.concat([bytes.subarray(0, at), Buffer.from([0xff, 0xc0, 0x80]), bytes.subarray(at)]);
    }
    case 'duplicate_key':
      return Buffer.from(text.startsWith('{') ? `{"${['seq', 'ts', 'online', 'digest', 'document'][pick % 5]}":"dup",${text.slice(1)}` : text);
    case 'bom':
      return Buffer.from(`\ufeff${text}`);
  }
}

/** A few cases just over the protocol's JSON payload bound (they cost memory, so they stay rare). */
const oversized = fc.constant(Buffer.alloc(MAX_JSON_PAYLOAD_BYTES + 1, 0x20));

/**
 * Bytes of one fuzz case built from a valid value: valid as is, mutated as a value, mutated as
 * text, random JSON, random bytes, or (rarely) oversized.
 */
export function mutatedJson(valid: fc.Arbitrary<unknown>): fc.Arbitrary<Buffer> {
  const asValue = fc
    .tuple(valid, fc.nat(), fc.constantFrom(...VALUE_MUTATIONS), hostileValue, fc.oneof(fc.string({ maxLength: 12 }), fc.constantFrom('__proto__', 'constructor', 'extra')))
    .map(([v, pick, mutation, hostile, key]) => Buffer.from(JSON.stringify(mutateValue(v, pick, mutation, hostile, key)) ?? 'null'));
  const asText = fc
    .tuple(valid, fc.nat(), fc.constantFrom(...TEXT_MUTATIONS), fc.string({ unit: 'binary', minLength: 1, maxLength: 2 }))
    .map(([v, pick, mutation, char]) => mutateText(JSON.stringify(v), pick, mutation, char));
  return fc.oneof(
    { arbitrary: valid.map((v) => Buffer.from(JSON.stringify(v))), weight: 20 },
    { arbitrary: asValue, weight: 45 },
    { arbitrary: asText, weight: 28 },
    { arbitrary: fc.json({ maxDepth: 3 }).map((j) => Buffer.from(j)), weight: 4 },
    { arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)), weight: 2 },
    { arbitrary: oversized, weight: 1 },
  );
}

// ---------------------------------------------------------------------------------------------
// Valid payloads of each kind (the starting points of the mutations).

const hex64 = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString('hex'));
const semver = fc.tuple(fc.nat(20), fc.nat(20), fc.nat(99)).map(([a, b, c]) => `${a}.${b}.${c}`);
const epochMs = fc.integer({ min: 0, max: 4_102_444_800_000 });
/** Mostly the last few days (what the hub's telemetry store accepts: not older than its raw retention, not in the future), sometimes any time. */
const recentMs = fc.oneof({ arbitrary: fc.integer({ min: Date.now() - 6 * 86_400_000, max: Date.now() }), weight: 4 }, { arbitrary: epochMs, weight: 1 });
const seq = fc.nat();
const labelKey = fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/);
const labelValue = fc.stringMatching(/^[a-z0-9]{0,8}$/);
const shortText = fc.string({ maxLength: 40 });
const token = fc.stringMatching(/^[A-Za-z0-9_-]{8,20}$/);
const phase = fc.constantFrom('received', 'downloading', 'verifying', 'probing', 'trial', 'committed', 'rolled_back', 'failed');
const activeBundle = fc.record({ name: fc.stringMatching(/^[a-z][a-z0-9-]{0,10}$/), version: semver, digest: hex64, deploymentId: token });

export const validPayload = {
  presence: fc.oneof(
    fc.record({ online: fc.constant(true), agentVersion: semver, epoch: seq, ts: epochMs }),
    fc.record({ online: fc.constant(false), epoch: seq, ts: epochMs }, { requiredKeys: ['online', 'epoch'] }),
  ),
  reported: fc.record({
    agentVersion: semver,
    ts: epochMs,
    labels: fc.dictionary(labelKey, labelValue, { maxKeys: 4 }),
    hardware: fc.record({ platform: shortText, arch: shortText, cpus: fc.nat(256), memoryMb: fc.nat(1 << 20), node: shortText }),
    active: fc.option(activeBundle),
    deployment: fc.option(fc.record({ deploymentId: token, seq, phase, digest: fc.option(hex64), reason: shortText }, { requiredKeys: ['deploymentId', 'seq', 'phase', 'digest'] })),
    lastDesiredSeq: seq,
    keyringVersion: fc.nat(100),
  }),
  telemetry: fc.record(
    {
      seq,
      ts: recentMs,
      intervalMs: fc.integer({ min: 1, max: 86_400_000 }),
      inferences: fc.nat(),
      errors: fc.nat(),
      latencyMs: fc.option(fc.record({ p50: fc.double({ min: 0, max: 1000, noNaN: true }), p95: fc.double({ min: 0, max: 1000, noNaN: true }), p99: fc.nat(1000), max: fc.nat(1000) })),
      rssMb: fc.double({ min: 0, max: 4096, noNaN: true }),
      cpuPct: fc.double({ min: 0, max: 400, noNaN: true }),
      active: fc.option(activeBundle),
      outbox: fc.record({ depth: fc.nat(), dropped: fc.nat() }),
    },
    { requiredKeys: ['seq', 'ts', 'intervalMs', 'inferences', 'errors', 'latencyMs', 'rssMb', 'cpuPct', 'active'] },
  ),
  events: fc.record(
    {
      eventId: token,
      ts: epochMs,
      type: fc.constantFrom('deployment', 'desired_rejected', 'inference_error', 'maintenance_alert'),
      deploymentId: token,
      seq,
      phase,
      digest: hex64,
      reason: fc.oneof(fc.constantFrom('schema', 'bad_signature', 'trial_collapsed'), shortText),
      message: shortText,
      alert: fc.record({
        machine: shortText,
        faultClass: fc.oneof(fc.constantFrom('outer_race', 'healthy'), shortText),
        confidence: fc.double({ min: 0, max: 1, noNaN: true }),
        rule: shortText,
        windows: fc.array(fc.record({ ts: epochMs, probability: fc.double({ min: 0, max: 1, noNaN: true }) }), { maxLength: 5 }),
        model: fc.record({ name: fc.constant('pdm'), version: semver, digest: hex64 }),
      }),
    },
    { requiredKeys: ['eventId', 'ts', 'type'] },
  ),
  'blob/req': fc.record({ digest: hex64, from: fc.nat(100), count: fc.integer({ min: 1, max: 32 }) }),
  'cmd/res': fc.record({ transaction: token, ok: fc.boolean(), error: shortText, result: fc.jsonValue({ maxDepth: 2 }) }, { requiredKeys: ['transaction', 'ok'] }),
  cmd: fc.record({ transaction: token, command: fc.constantFrom('rollback', 'capture', 'reload'), args: fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }) }, { requiredKeys: ['transaction', 'command'] }),
  blobFrameHeader: fc.record({ digest: hex64, index: fc.nat(64), total: fc.nat(64), error: shortText }, { requiredKeys: ['digest', 'index', 'total'] }),
} as const;
