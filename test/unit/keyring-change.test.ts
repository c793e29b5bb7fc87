/**
 * The next keyring for a change (hub/src/infra/keyring-change.ts), on its own: what each change
 * keeps, drops and carries forward, so a device that skips versions loses nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { KeyringKeyT, KeyringT } from '@cairn/shared';
import { KEY_LIFETIME_MS, KeyringChangeError, nextKeyring } from '@cairn/hub/infra/keyring-change.js';

const NOW = Date.UTC(2026, 10, 26);
const key = (n: number, role: KeyringKeyT['role'], expiresAt = NOW + 1000): KeyringKeyT => ({ keyId: n.toString(16).padStart(16, '0'), role, publicKey: `${'A'.repeat(43)}=`, expiresAt });
const base: KeyringT = { version: 4, issuedAt: NOW - 1000, expiresAt: NOW + 1000, keys: [key(1, 'release'), key(2, 'director')], revoked: [key(9, 'release').keyId], securityFloor: 3 };

test('rotate: a new director replaces the old one; a new release key joins the old one, which stays verify-only', () => {
  const director = nextKeyring(base, { kind: 'rotate', role: 'director' }, [key(3, 'director')], NOW);
  assert.deepEqual(director.keys.map((k) => k.keyId), [key(1, 'release').keyId, key(3, 'director').keyId]);
  const release = nextKeyring(base, { kind: 'rotate', role: 'release' }, [key(4, 'release')], NOW);
  assert.deepEqual(release.keys.map((k) => k.keyId), [key(1, 'release').keyId, key(2, 'director').keyId, key(4, 'release').keyId]);
  for (const next of [director, release]) {
    assert.equal(next.version, 5);
    assert.equal(next.expiresAt, NOW + KEY_LIFETIME_MS, 'every change renews the keyring');
    assert.deepEqual(next.revoked, base.revoked, 'revocations are carried forward');
    assert.equal(next.securityFloor, 3, 'the floor is carried forward');
  }
});

test('revoke: the key leaves and joins the revoked list (newest 64 kept); an unknown key is refused', () => {
  const next = nextKeyring(base, { kind: 'revoke', keyId: key(1, 'release').keyId }, [key(5, 'release')], NOW);
  assert.deepEqual(next.keys.map((k) => k.keyId), [key(2, 'director').keyId, key(5, 'release').keyId]);
  assert.deepEqual(next.revoked, [key(9, 'release').keyId, key(1, 'release').keyId]);
  const many = { ...base, revoked: Array.from({ length: 64 }, (_, i) => key(100 + i, 'release').keyId) };
  const capped = nextKeyring(many, { kind: 'revoke', keyId: key(1, 'release').keyId }, [], NOW);
  assert.equal(capped.revoked!.length, 64);
  assert.equal(capped.revoked!.at(-1), key(1, 'release').keyId);
  assert.throws(() => nextKeyring(base, { kind: 'revoke', keyId: key(7, 'release').keyId }, [], NOW), (err: unknown) => err instanceof KeyringChangeError && err.kind === 'unknown_key');
});

test('floor: it rises or stays (a renewal), never falls; expired keys leave the keyring', () => {
  assert.equal(nextKeyring(base, { kind: 'floor', releaseCounter: 8 }, [], NOW).securityFloor, 8);
  assert.equal(nextKeyring(base, { kind: 'floor', releaseCounter: 3 }, [], NOW).securityFloor, 3);
  assert.throws(() => nextKeyring(base, { kind: 'floor', releaseCounter: 2 }, [], NOW), (err: unknown) => err instanceof KeyringChangeError && err.kind === 'floor_lowered');
  const withExpired = { ...base, keys: [...base.keys, key(6, 'release', NOW - 1)] };
  assert.ok(!nextKeyring(withExpired, { kind: 'floor', releaseCounter: 3 }, [], NOW).keys.some((k) => k.keyId === key(6, 'release').keyId));
  const fresh = nextKeyring({ version: 1, issuedAt: 0, expiresAt: NOW, keys: base.keys }, { kind: 'floor', releaseCounter: 0 }, [], NOW);
  assert.ok(!('revoked' in fresh) && !('securityFloor' in fresh), 'absent fields stay absent, as keyrings signed before them have them');
});
