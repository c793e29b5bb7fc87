/** The broker port's topic-filter matcher agrees with the MQTT rules, checked against a reference that splits the strings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { topicMatches } from '@cairn/hub/infra/broker.js';

function reference(filter: string, topic: string): boolean {
  const f = filter.split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length || (f[i] !== '+' && f[i] !== t[i])) return false;
  }
  return f.length === t.length;
}

test('topic filters: exact, +, #, parent level of #, empty levels', () => {
  const cases: Array<[string, string, boolean]> = [
    ['cairn/v1/dev/+/telemetry', 'cairn/v1/dev/d1/telemetry', true],
    ['cairn/v1/dev/+/telemetry', 'cairn/v1/dev/d1/events', false],
    ['cairn/v1/dev/+/telemetry', 'cairn/v1/dev/d1/telemetry/x', false],
    ['cairn/v1/dev/+/blob/req', 'cairn/v1/dev/d1/blob/req', true],
    ['cairn/#', 'cairn/v1/anything', true],
    ['a/#', 'a', true],
    ['a/+', 'a', false],
    ['a/+', 'a/', true],
    ['#', 'x/y', true],
    ['a/b', 'a/bc', false],
    ['a/bc', 'a/b', false],
    ['+', '', true],
  ];
  for (const [filter, topic, expected] of cases) assert.equal(topicMatches(filter, topic), expected, `${filter} ~ ${topic}`);
});

test('property: the in-place matcher equals the splitting reference', () => {
  const level = fc.constantFrom('a', 'b', 'ab', '', 'dev', 'x1');
  const filterLevel = fc.oneof(level, fc.constant('+'), fc.constant('#'));
  fc.assert(
    fc.property(fc.array(filterLevel, { minLength: 1, maxLength: 5 }), fc.array(level, { minLength: 1, maxLength: 5 }), (f, t) => {
      const filter = f.join('/');
      const topic = t.join('/');
      assert.equal(topicMatches(filter, topic), reference(filter, topic), `${filter} ~ ${topic}`);
    }),
    { numRuns: 20_000 },
  );
});
