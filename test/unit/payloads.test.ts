import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodePayload, SCHEMA_REJECTIONS, encodePayload, encodeBlobFrame, decodeBlobFrame, MAX_JSON_PAYLOAD_BYTES, PAYLOAD_SCHEMAS, BLOB_CHUNK_BYTES, type JsonTopicKind } from '@cairn/shared';

const telemetry = { seq: 3, ts: 1_700_000_000_000, intervalMs: 10_000, inferences: 10, errors: 1, latencyMs: { p50: 1, p95: 2, p99: 3, max: 9 }, rssMb: 61.5, cpuPct: 4.2, active: null };

test('decodePayload accepts a valid payload and names the reason for each kind of refusal', () => {
  const ok = decodePayload('telemetry', Buffer.from(JSON.stringify(telemetry)));
  assert.ok(ok.ok);
  assert.deepEqual(ok.value, telemetry);

  const notJson = decodePayload('telemetry', Buffer.from('{"seq":'));
  assert.deepEqual([notJson.ok, !notJson.ok && notJson.reason], [false, 'not_json']);

  const unknownField = decodePayload('telemetry', JSON.stringify({ ...telemetry, extra: 1 }));
  assert.ok(!unknownField.ok && unknownField.reason === 'unknown_field' && /additional/.test(unknownField.message), JSON.stringify(unknownField));

  const outOfRange = decodePayload('telemetry', JSON.stringify({ ...telemetry, seq: -1, errors: 1.5 }));
  assert.ok(!outOfRange.ok && outOfRange.reason === 'out_of_range');
  assert.match(!outOfRange.ok ? outOfRange.message : '', /\/seq/);
  assert.match(!outOfRange.ok ? outOfRange.message : '', /\/errors/);

  const huge = decodePayload('events', Buffer.alloc(MAX_JSON_PAYLOAD_BYTES + 1, 0x20));
  assert.deepEqual([huge.ok, !huge.ok && huge.reason], [false, 'too_large']);

  const wrongKind = decodePayload('presence', JSON.stringify(telemetry));
  assert.ok(!wrongKind.ok && wrongKind.reason === 'missing_field');
});

test('presence is a birth or an offline message, nothing in between', () => {
  assert.ok(decodePayload('presence', JSON.stringify({ online: true, agentVersion: '0.1.0', epoch: 4, ts: 1 })).ok);
  assert.ok(decodePayload('presence', JSON.stringify({ online: false, epoch: 4 })).ok);
  assert.ok(!decodePayload('presence', JSON.stringify({ online: false, epoch: 4, agentVersion: '0.1.0' })).ok);
  assert.ok(!decodePayload('presence', JSON.stringify({ online: true, epoch: 4, ts: 1 })).ok);
  assert.ok(!decodePayload('presence', JSON.stringify({ online: 'true', epoch: 4 })).ok);
});

test('encodePayload refuses to send an invalid payload', () => {
  assert.deepEqual(JSON.parse(encodePayload('telemetry', telemetry).toString()), telemetry);
  assert.throws(() => encodePayload('telemetry', { ...telemetry, seq: -5 }), /refusing to send an invalid telemetry payload/);
});

test('no byte sequence makes decodePayload throw, for any topic kind', () => {
  const kinds = Object.keys(PAYLOAD_SCHEMAS) as JsonTopicKind[];
  fc.assert(
    fc.property(fc.constantFrom(...kinds), fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.json().map((j) => Buffer.from(j)), fc.anything().map((v) => Buffer.from(JSON.stringify(v) ?? 'null'))), (kind, bytes) => {
      const result = decodePayload(kind, bytes);
      assert.equal(typeof result.ok, 'boolean');
      if (!result.ok) assert.ok(['not_json', 'too_large', ...SCHEMA_REJECTIONS].includes(result.reason));
    }),
    { numRuns: 10_000 },
  );
});

test('blob frames round-trip, and malformed frames are refused with a message', () => {
  const chunk = Buffer.alloc(BLOB_CHUNK_BYTES, 7);
  const header = { digest: 'ab'.repeat(32), index: 3, total: 9 };
  const decoded = decodeBlobFrame(encodeBlobFrame(header, chunk));
  assert.ok(decoded.ok);
  assert.deepEqual(decoded.header, header);
  assert.ok(decoded.chunk.equals(chunk));

  const error = decodeBlobFrame(encodeBlobFrame({ ...header, total: 0, error: 'not_assigned' }));
  assert.ok(error.ok && error.header.error === 'not_assigned' && error.chunk.length === 0);

  const bad: [Buffer, RegExp][] = [
    [Buffer.alloc(2), /shorter/],
    [Buffer.from([0, 0, 0x10, 0]), /header length/],
    [Buffer.concat([Buffer.from([0, 0, 0, 3]), Buffer.from('{x}')]), /not JSON/],
    [encodeBlobFrame({ ...header, digest: 'nothex' } as typeof header), /schema/],
    [Buffer.alloc(BLOB_CHUNK_BYTES * 2), /exceeds/],
  ];
  for (const [frame, message] of bad) {
    const result = decodeBlobFrame(frame);
    assert.ok(!result.ok && message.test(result.message), `${message}: ${JSON.stringify(result)}`);
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => void decodeBlobFrame(Buffer.from(bytes))), { numRuns: 5_000 });
});
