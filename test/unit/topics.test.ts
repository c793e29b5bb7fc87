import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AGENT_TO_HUB_KINDS, HUB_TO_AGENT_KINDS, deviceTopic, fleetSubscription, isValidDeviceId, parseDeviceTopic, InvalidDeviceIdError, type TopicKind } from '@cairn/shared';

const KINDS: TopicKind[] = [...AGENT_TO_HUB_KINDS, ...HUB_TO_AGENT_KINDS];
const idChars = fc.constantFrom(...'abcxyzABCXYZ0189._-'.split(''));
const validId = fc
  .tuple(fc.constantFrom(...'aZ09'.split('')), fc.array(idChars, { maxLength: 63 }))
  .map(([first, rest]) => first + rest.join(''));

test('parse(build(id, kind)) returns the same id and kind for every valid id and kind', () => {
  fc.assert(
    fc.property(validId, fc.constantFrom(...KINDS), (id, kind) => {
      assert.deepEqual(parseDeviceTopic(deviceTopic(id, kind)), { deviceId: id, kind });
    }),
    { numRuns: 2000 },
  );
});

test('an id containing a wildcard, a separator, or of bad length is refused by the builder', () => {
  const bad = fc.oneof(
    fc.constant(''),
    fc.string({ minLength: 65, maxLength: 200 }).map((s) => 'a'.repeat(65) + s),
    fc.tuple(validId, fc.constantFrom('+', '#', '/', ' ', '\u0000', '$'), validId).map(([a, c, b]) => a + c + b),
    fc.constantFrom('+', '#', '/', '.hidden', '-dash', '_under'),
  );
  fc.assert(
    fc.property(bad, fc.constantFrom(...KINDS), (id, kind) => {
      assert.equal(isValidDeviceId(id), false);
      assert.throws(() => deviceTopic(id, kind), InvalidDeviceIdError);
    }),
    { numRuns: 2000 },
  );
});

test('a built topic never lies under another device or outside the device prefix', () => {
  fc.assert(
    fc.property(validId, validId, fc.constantFrom(...KINDS), (a, b, kind) => {
      fc.pre(a !== b);
      const topic = deviceTopic(a, kind);
      assert.ok(topic.startsWith(`cairn/v1/dev/${a}/`));
      assert.ok(!topic.startsWith(`cairn/v1/dev/${b}/`));
      assert.equal(topic.split('/').length, 5 + (kind.includes('/') ? 1 : 0));
    }),
    { numRuns: 2000 },
  );
});

test('parse rejects foreign, wildcard, malformed and unknown-kind topics', () => {
  for (const topic of [
    'cairn/v1/dev/+/presence',
    'cairn/v1/dev/#',
    'cairn/v1/dev/a/#',
    'cairn/v1/dev//presence',
    'cairn/v1/dev/a/unknown',
    'cairn/v1/dev/a/presence/extra',
    'cairn/v2/dev/a/presence',
    '$SYS/broker/uptime',
    'cairn/v1/dev/a',
    '',
  ]) {
    assert.equal(parseDeviceTopic(topic), null, topic);
  }
});

test('fleet subscriptions use one single-level wildcard in the id position', () => {
  assert.equal(fleetSubscription('telemetry'), 'cairn/v1/dev/+/telemetry');
  assert.equal(fleetSubscription('blob/req'), 'cairn/v1/dev/+/blob/req');
});
