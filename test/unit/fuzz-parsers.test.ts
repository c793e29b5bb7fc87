/**
 * Fuzzing of the pure parsers both sides run on what they receive: every JSON payload kind, blob
 * frames, topics, the desired-document verifier (the agent's parser of what the hub signs), the
 * manifest and its health section, the label-selector parser and the agent's input records.
 * 10,000 structure-aware cases per target (test/helpers/fuzz.ts); each property says what must
 * hold for every case, not only "does not throw".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  canonicalJson,
  checkValue,
  Compile,
  decodeBlobFrame,
  decodePayload,
  deviceTopic,
  encodeBlobFrame,
  formatSelector,
  HealthPolicyError,
  canonicalJsonProblem,
  matchesSelector,
  MAX_JSON_DEPTH,
  parseDeviceTopic,
  parseSelector,
  PAYLOAD_SCHEMAS,
  REJECTION_REASONS,
  resolveHealthPolicy,
  SelectorSyntaxError,
  SignedManifest,
  TrustError,
  verifyDesired,
  verifyManifest,
  SCHEMA_REJECTIONS,
  type JsonTopicKind,
  type SignedDesiredT,
} from '@cairn/shared';
import { parseRecord, RecordError, RECORD_REJECTIONS } from '@cairn/agent/components/sources/records.js';
import { mutatedJson, nestedText, validPayload } from '../helpers/fuzz.js';
import { createTrustFixture, makeManifest, signDesired, signManifest } from '../helpers/trust-fixtures.js';

const RUNS = { numRuns: 10_000 };
const PAYLOAD_REJECTIONS = ['too_large', 'not_json', 'too_deep', 'not_canonical', ...SCHEMA_REJECTIONS];

/** What an accepted value must allow: the walks that sign, store and log it. */
function assertSerializable(value: unknown): void {
  assert.equal(canonicalJsonProblem(value), null);
  assert.equal(typeof JSON.stringify(value), 'string');
  assert.equal(typeof canonicalJson(value), 'string');
}

for (const kind of Object.keys(PAYLOAD_SCHEMAS).filter((k) => k !== 'desired') as Exclude<JsonTopicKind, 'desired'>[]) {
  test(`fuzz: decodePayload('${kind}') never throws, names a closed reason, and accepts only serializable values`, () => {
    fc.assert(
      fc.property(mutatedJson(validPayload[kind]), (bytes) => {
        const decoded = decodePayload(kind, bytes);
        if (!decoded.ok) return void assert.ok(PAYLOAD_REJECTIONS.includes(decoded.reason), decoded.reason);
        assertSerializable(decoded.value);
      }),
      RUNS,
    );
  });
}

test('regression: a payload nested thousands of levels deep is refused as too_deep, not left to overflow the stack when it is signed or logged', () => {
  // Deep enough to overflow the recursive serializer however V8 has optimized its frames by now
  // (5,000 levels did not once earlier tests had warmed it up); JSON.parse itself does not recurse.
  const command = `{"transaction":"t-1","command":"reload","args":{"x":${nestedText(100_000)}}}`;
  assert.throws(() => canonicalJson(JSON.parse(command)), RangeError, 'the hazard the limit exists for');
  const decoded = decodePayload('cmd', command);
  assert.deepEqual(decoded.ok ? 'accepted' : decoded.reason, 'too_deep');
  // At the limit a value is still accepted.
  const atLimit = `{"transaction":"t-1","command":"reload","args":{"x":${nestedText(MAX_JSON_DEPTH - 2)}}}`;
  assert.ok(decodePayload('cmd', atLimit).ok);
  assert.equal(decodePayload('cmd', `{"transaction":"t-1","command":"reload","args":{"x":${nestedText(MAX_JSON_DEPTH - 1)}}}`).ok, false);
});

test('regression: numbers that overflow to Infinity and lone surrogates are refused as not_canonical, since no signature can cover them', () => {
  for (const text of ['{"transaction":"t-1","command":"reload","args":{"x":1e400}}', '{"transaction":"t-1","command":"reload","args":{"x":"\\ud800"}}', '{"transaction":"t-1","command":"reload","args":{"\\udc00":1}}']) {
    assert.throws(() => canonicalJson(JSON.parse(text)), /not allowed/, 'the hazard the check exists for');
    const decoded = decodePayload('cmd', text);
    assert.equal(decoded.ok ? 'accepted' : decoded.reason, 'not_canonical', text);
  }
  assert.ok(decodePayload('cmd', '{"transaction":"t-1","command":"reload","args":{"x":"\\ud83d\\udca5","y":1e300}}').ok, 'a surrogate pair and a large finite number are fine');
});

test('bytes and text decode alike: the surrogate scan skipped for bytes without a \\u escape never lets a lone surrogate through', () => {
  // UTF-16 code units of any value, lone surrogates included: JSON.stringify escapes those as \uXXXX.
  const anyUnits = fc.array(fc.integer({ min: 0, max: 0xffff }), { maxLength: 8 }).map((units) => String.fromCharCode(...units));
  const args = fc.dictionary(anyUnits, fc.oneof(anyUnits, fc.double(), fc.array(anyUnits, { maxLength: 3 })), { maxKeys: 4 });
  fc.assert(
    fc.property(args, (value) => {
      const text = JSON.stringify({ transaction: 't-1', command: 'reload', args: value });
      const bytes = Buffer.from(text);
      const backing = new Uint8Array(bytes.length + 2);
      backing.set(bytes, 2);
      const view = backing.subarray(2); // not a Buffer, and at an offset into its memory
      const reasons = [text, bytes, view].map((payload) => {
        const decoded = decodePayload('cmd', payload);
        return decoded.ok ? 'accepted' : decoded.reason;
      });
      assert.deepEqual(new Set(reasons).size, 1, `${text}: ${reasons.join(', ')}`);
    }),
    RUNS,
  );
  // Raw bytes that would encode a surrogate (CESU-8) are not UTF-8: they decode to U+FFFD, never to a lone surrogate.
  const cesu = Buffer.concat([Buffer.from('{"transaction":"t-1","command":"reload","args":{"x":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}}')]);
  const decoded = decodePayload('cmd', cesu);
  assert.ok(decoded.ok && decoded.value.args?.x === '\ufffd\ufffd\ufffd', JSON.stringify(decoded));
});

test('fuzz: blob frames — truncated, mis-sized and mutated headers are refused with a message, accepted frames are consistent', () => {
  const frame = fc.oneof(
    // A valid frame, then cut anywhere.
    fc.tuple(validPayload.blobFrameHeader, fc.uint8Array({ maxLength: 300 }), fc.nat()).map(([h, chunk, cut]) => {
      const bytes = encodeBlobFrame(h as never, chunk);
      return bytes.subarray(0, cut % (bytes.length + 1));
    }),
    // A length word that lies.
    fc.tuple(validPayload.blobFrameHeader, fc.uint8Array({ maxLength: 100 }), fc.oneof(fc.nat(2000), fc.constantFrom(0xffffffff, 0x80000000, 1025))).map(([h, chunk, length]) => {
      const bytes = encodeBlobFrame(h as never, chunk);
      bytes.writeUInt32BE(length, 0);
      return bytes;
    }),
    // A mutated header in a well-formed envelope.
    fc.tuple(mutatedJson(validPayload.blobFrameHeader), fc.uint8Array({ maxLength: 100 })).map(([header, chunk]) => {
      const length = Buffer.alloc(4);
      length.writeUInt32BE(header.length, 0);
      return Buffer.concat([length, header, chunk]);
    }),
  );
  fc.assert(
    fc.property(frame, (bytes) => {
      const decoded = decodeBlobFrame(bytes);
      if (!decoded.ok) return void assert.ok(decoded.message.length > 0);
      const headerLength = bytes.readUInt32BE(0);
      assert.equal(4 + headerLength + decoded.chunk.length, bytes.length);
      assert.ok(Number.isInteger(decoded.header.index) && decoded.header.index >= 0);
    }),
    RUNS,
  );
});

test('fuzz: topics that look like Cairn topics parse only when they round-trip', () => {
  const level = fc.oneof(fc.constantFrom('cairn', 'v1', 'v2', 'dev', 'presence', 'blob', 'req', 'res', 'cmd', 'desired', '+', '#', '', '$SYS', 'a.b', '..'), fc.string({ maxLength: 8 }));
  const topic = fc.oneof(
    fc.array(level, { minLength: 1, maxLength: 7 }).map((levels) => levels.join('/')),
    fc.tuple(fc.string({ maxLength: 70 }), level).map(([id, kind]) => `cairn/v1/dev/${id}/${kind}`),
  );
  fc.assert(
    fc.property(topic, (t) => {
      const parsed = parseDeviceTopic(t);
      if (parsed) assert.equal(deviceTopic(parsed.deviceId, parsed.kind), t);
    }),
    RUNS,
  );
});

/** Signed documents for one device, the starting points of the desired-document mutations. */
function desiredCorpus(deviceId: string) {
  const trust = createTrustFixture();
  const model = new Uint8Array(64).fill(7);
  const health = { schema: 'cairn.health/v1', probes: [{ input: new Array(16).fill(0.5), expected: [0.1, 0.2, 0.3, 0.4] }], trial: { durationMs: 1000 } };
  const withHealth = { ...makeManifest(model), health, lineage: { recipe: 'x', parents: [{ version: '0.9.0' }] } };
  const documents: SignedDesiredT[] = [
    signDesired(trust, { deviceId, seq: 5, bundle: null }),
    signDesired(trust, { deviceId, seq: 6, bundle: signManifest(makeManifest(model), trust.release) }),
    signDesired(trust, { deviceId, seq: 7, bundle: signManifest(withHealth, trust.release) }),
  ];
  return { trust, documents };
}

test('fuzz: the desired-document parser refuses every mutation with a TrustError reason, and no mutation verifies as another document', () => {
  const deviceId = 'fuzz-device';
  const { trust, documents } = desiredCorpus(deviceId);
  const originals = new Set(documents.map((d) => canonicalJson(d.document)));
  const state = { deviceId, rootPublicKey: trust.root.publicKey, keyringVersion: 0, lastSeq: -1, lastFingerprint: null, securityFloor: 0, agentVersion: '0.1.0', now: Date.now() };
  fc.assert(
    fc.property(mutatedJson(fc.constantFrom(...documents)), (bytes) => {
      // The agent's path: decode (size, JSON, depth, schema), then verify the chain.
      const decoded = decodePayload('desired', bytes);
      if (!decoded.ok) return void assert.ok(PAYLOAD_REJECTIONS.includes(decoded.reason));
      try {
        const verdict = verifyDesired(decoded.value, state);
        assert.equal(verdict.status, 'accepted');
        if (verdict.status === 'accepted') assert.ok(originals.has(canonicalJson(verdict.document)), 'a document the hub never signed verified');
      } catch (err) {
        if (!(err instanceof TrustError)) throw err;
        assert.ok(Object.hasOwn(REJECTION_REASONS, err.reason));
      }
    }),
    RUNS,
  );
});

test('fuzz: manifests — the schema, the release signature and the health section refuse every mutation with their own error', () => {
  const trust = createTrustFixture();
  const { documents } = { documents: [makeManifest(new Uint8Array(8)), { ...makeManifest(new Uint8Array(8)), health: { schema: 'cairn.health/v1', probes: [{ input: new Array(16).fill(1) }] } }] };
  const signed = documents.map((m) => signManifest(m, trust.release));
  const validator = Compile(SignedManifest);
  const now = Date.now();
  fc.assert(
    fc.property(mutatedJson(fc.constantFrom(...signed)), (bytes) => {
      let value: unknown;
      try {
        value = JSON.parse(bytes.toString('utf8'));
      } catch {
        return;
      }
      if (canonicalJsonProblem(value)) return;
      const checked = checkValue<(typeof signed)[number]>(validator, value);
      if (!checked.ok) return;
      try {
        verifyManifest(checked.value, trust.keyring.keyring, now);
      } catch (err) {
        if (!(err instanceof TrustError)) throw err;
      }
      try {
        resolveHealthPolicy(checked.value.manifest.health, checked.value.manifest);
      } catch (err) {
        if (!(err instanceof HealthPolicyError)) throw err;
      }
    }),
    RUNS,
  );
});

test('fuzz: label selectors — anything that parses formats to text that parses to the same selector; everything else is a positioned SelectorSyntaxError', () => {
  const token = fc.oneof(
    fc.constantFrom('site', 'line', 'a', 'in', 'notin', 'constructor', '__proto__', 'toString', 'x/y', 'a.b-c', '-a', 'a-', 'x'.repeat(64)),
    fc.constantFrom('=', '==', '!=', '!', '(', ')', ',', ' ', '\t', '=!', '()', '\u00e9', '\n', '\u0000'),
    fc.string({ maxLength: 4 }),
  );
  const selector = fc.oneof(fc.array(token, { maxLength: 16 }).map((t) => t.join('')), fc.string({ maxLength: 40 }), fc.constant('a,'.repeat(2100)));
  const labels = fc.dictionary(fc.constantFrom('site', 'line', 'a', 'in', 'constructor', 'toString'), fc.constantFrom('', 'a', 'site', 'plant-3'), { maxKeys: 4 });
  fc.assert(
    fc.property(selector, labels, (text, l) => {
      let parsed;
      try {
        parsed = parseSelector(text);
      } catch (err) {
        assert.ok(err instanceof SelectorSyntaxError, String(err));
        assert.ok(err.position >= 0 && err.position <= text.length);
        return;
      }
      const again = parseSelector(formatSelector(parsed));
      assert.deepEqual(again, parsed);
      const matched = matchesSelector(parsed, l);
      assert.equal(matched, matchesSelector(again, l));
      // Inherited properties are not labels.
      if (parsed.length === 1 && parsed[0]!.op === 'exists' && !Object.hasOwn(l, parsed[0]!.key)) assert.equal(matched, false);
    }),
    RUNS,
  );
});

test('fuzz: input records are parsed or refused with one of the record reasons', () => {
  const valid = fc.oneof(
    fc.record({ features: fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 20 }), ts: fc.nat() }, { requiredKeys: ['features'] }),
    fc.record({ samples: fc.array(fc.double({ min: -10, max: 10, noNaN: true }), { minLength: 1, maxLength: 64 }), sampleRateHz: fc.constant(12800), temperatureC: fc.option(fc.double({ min: -40, max: 120, noNaN: true })) }, { requiredKeys: ['samples', 'sampleRateHz'] }),
    fc.record({ inputs: fc.dictionary(fc.constantFrom('features', 'x', 'constructor'), fc.record({ dims: fc.array(fc.nat(8), { maxLength: 3 }), data: fc.array(fc.double({ noNaN: true }), { maxLength: 8 }) }), { minKeys: 1, maxKeys: 2 }) }),
  );
  fc.assert(
    fc.property(mutatedJson(valid), (bytes) => {
      try {
        const record = parseRecord(bytes.toString('utf8'));
        assert.ok(['tensors', 'features', 'vibration'].includes(record.kind));
      } catch (err) {
        assert.ok(err instanceof RecordError, String(err));
        assert.ok((RECORD_REJECTIONS as readonly string[]).includes(err.reason));
      }
    }),
    RUNS,
  );
});
