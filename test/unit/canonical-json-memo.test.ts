/**
 * The canonical JSON serializer against the `canonicalize` library it mirrors (RFC 8785), and its
 * memo of frozen values (what makes signing one desired document per device cheap).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import canonicalize from 'canonicalize';
import { canonicalJson, freezeCanonical } from '@cairn/shared';

test('canonicalJson produces exactly what the canonicalize library produces, for 10,000 JSON values', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 5 }), fc.option(fc.jsonValue({ maxDepth: 3 })), (value, shared) => {
      const frozen = shared === null ? null : freezeCanonical(structuredClone({ shared }));
      const document = { value, frozen, also: frozen };
      assert.equal(canonicalJson(document), canonicalize(document));
    }),
    { numRuns: 10_000 },
  );
});

test('a frozen value is memoized and cannot change under its memo; anything else is serialized afresh', () => {
  const keyring = freezeCanonical({ keys: [{ keyId: 'b' }, { keyId: 'a' }], version: 1 });
  assert.ok(Object.isFrozen(keyring.keys[0]), 'deeply frozen');
  assert.throws(() => {
    (keyring.keys as Array<{ keyId: string }>).push({ keyId: 'c' });
  }, TypeError);
  const open = { keys: [{ keyId: 'b' }], version: 1 };
  const before = canonicalJson({ keyring, open });
  open.version = 2;
  assert.notEqual(canonicalJson({ keyring, open }), before, 'an unfrozen value is never served from the memo');
  assert.throws(() => canonicalJson({ x: Infinity }), /not allowed/);
  assert.throws(() => canonicalJson({ x: '\ud800' }), /not allowed/);
});
