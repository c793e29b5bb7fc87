import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseSelector, matchesSelector, formatSelector, SelectorSyntaxError } from '@cairn/shared';

const labels = { site: 'plant-3', line: 'a', hw: 'rpi4' };

test('selectors in Kubernetes syntax match as Kubernetes does', () => {
  const cases: [string, boolean][] = [
    ['', true],
    ['site=plant-3', true],
    ['site==plant-3', true],
    ['site=plant-1', false],
    ['line!=b', true],
    ['missing!=x', true],
    ['hw in (rpi4,jetson)', true],
    ['hw in (jetson)', false],
    ['hw notin (jetson, x86)', true],
    ['missing notin (a)', true],
    ['missing in (a)', false],
    ['site', true],
    ['!retired', true],
    ['!site', false],
    ['site=plant-3,line in (a,b),!retired', true],
    ['site=plant-3, line=b', false],
  ];
  for (const [text, expected] of cases) assert.equal(matchesSelector(parseSelector(text), labels), expected, text);
});

test('malformed selectors raise a positioned syntax error', () => {
  for (const text of ['site=', 'site=plant 3', '=a', 'a in b', 'a in (b', 'a,', ',a', 'a b', 'a=$x', 'a in ()x', 'k=' + 'v'.repeat(70), '!']) {
    if (text === 'site=') {
      assert.deepEqual(parseSelector(text), [{ key: 'site', op: 'eq', value: '' }]);
      continue;
    }
    assert.throws(() => parseSelector(text), SelectorSyntaxError, text);
  }
});

test('format(parse(s)) parses back to the same selector', () => {
  const key = fc.stringMatching(/^[a-z][a-z0-9-]{0,8}[a-z0-9]$/);
  const value = fc.stringMatching(/^[a-z0-9]{1,6}$/);
  const requirement = fc.oneof(
    fc.tuple(key, fc.constantFrom('=', '!='), value).map(([k, op, v]) => `${k}${op}${v}`),
    fc.tuple(key, fc.constantFrom('in', 'notin'), fc.array(value, { minLength: 1, maxLength: 3 })).map(([k, op, vs]) => `${k} ${op} (${vs.join(', ')})`),
    key,
    key.map((k) => `!${k}`),
  );
  fc.assert(
    fc.property(fc.array(requirement, { maxLength: 5 }), (reqs) => {
      const parsed = parseSelector(reqs.join(','));
      assert.deepEqual(parseSelector(formatSelector(parsed)), parsed);
    }),
    { numRuns: 1000 },
  );
});

test('arbitrary input never crashes the parser with anything but a syntax error', () => {
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (text) => {
      try {
        parseSelector(text);
      } catch (err) {
        assert.ok(err instanceof SelectorSyntaxError, String(err));
      }
    }),
    { numRuns: 10_000 },
  );
});
