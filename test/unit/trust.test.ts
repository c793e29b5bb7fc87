/**
 * The desired-document verifier (shared/src/bundle/trust.ts) on its own: one test per attack
 * the trust chain exists to stop, each expecting its exact reason code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { verifyDesired, TrustError, signDocument, type DeviceTrustState, type SignedDesiredT } from '@cairn/shared';
import { buildKeyring, createTrustFixture, desiredFor, makeManifest, randomKey, signDesired, signManifest, HOUR_MS } from '../helpers/trust-fixtures.js';

const MODEL = new Uint8Array([1, 2, 3, 4]);
const trust = createTrustFixture();

function state(overrides: Partial<DeviceTrustState> = {}): DeviceTrustState {
  return {
    deviceId: 'dev-1',
    rootPublicKey: trust.root.publicKey,
    keyringVersion: 0,
    securityFloor: 0,
    lastSeq: -1,
    lastFingerprint: null,
    agentVersion: '0.1.0',
    now: Date.now(),
    ...overrides,
  };
}

function refusedWith(reason: string, doc: unknown, s: DeviceTrustState = state()) {
  assert.throws(
    () => verifyDesired(doc, s),
    (err: unknown) => err instanceof TrustError && err.reason === reason,
    `expected ${reason}`,
  );
}

test('a well-formed chain is accepted, and its exact re-delivery is "unchanged"', () => {
  const doc = desiredFor(trust, 'dev-1', 5, MODEL);
  const verdict = verifyDesired(doc, state());
  assert.equal(verdict.status, 'accepted');
  if (verdict.status !== 'accepted') return;
  assert.equal(verdict.document.seq, 5);
  assert.deepEqual(verifyDesired(structuredClone(doc), state({ lastSeq: 5, lastFingerprint: verdict.fingerprint })), { status: 'unchanged' });
});

test('refuses: a document for another device (wrong_device)', () => refusedWith('wrong_device', desiredFor(trust, 'dev-2', 5, MODEL)));

test('refuses: an older seq (replayed_seq) and another document with the same seq (equivocation)', () => {
  refusedWith('replayed_seq', desiredFor(trust, 'dev-1', 4, MODEL), state({ lastSeq: 5, lastFingerprint: 'x' }));
  refusedWith('equivocation', desiredFor(trust, 'dev-1', 5, MODEL), state({ lastSeq: 5, lastFingerprint: 'something else' }));
});

test('refuses: an expired document (expired) — a freeze attack', () => {
  refusedWith('expired', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: null, issuedAt: Date.now() - 2 * HOUR_MS, expiresAt: Date.now() - HOUR_MS }));
});

test('refuses: a keyring not signed by the pinned root (keyring_signature)', () => {
  const otherRoot = randomKey('root');
  const forged = buildKeyring(otherRoot, [trust.director, trust.release]);
  refusedWith('keyring_signature', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: null, keyring: forged }));
});

test('refuses: an older keyring version (keyring_rollback) and an expired keyring (keyring_expired)', () => {
  refusedWith('keyring_rollback', desiredFor(trust, 'dev-1', 1, MODEL), state({ keyringVersion: 2 }));
  const expired = buildKeyring(trust.root, [trust.director, trust.release], { expiresAt: Date.now() - 1 });
  refusedWith('keyring_expired', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: null, keyring: expired }));
});

test('refuses: a document signed by a key the keyring does not list (unknown_key)', () => {
  refusedWith('unknown_key', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: null, signer: randomKey('director') }));
});

test('refuses: a desired document signed with the release key (key_role)', () => {
  refusedWith('key_role', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: null, signer: trust.release }));
});

test('refuses: a bundle signed only by the director key — director compromise alone cannot ship a model (key_role)', () => {
  const bundle = signManifest(makeManifest(MODEL), trust.director);
  refusedWith('key_role', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle }));
});

test('refuses: a bundle signed by an unknown release key (bundle_signature)', () => {
  const bundle = signManifest(makeManifest(MODEL), randomKey('release'));
  refusedWith('bundle_signature', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle }));
});

test('refuses: a manifest altered after signing, even with a valid director signature over the whole (bundle_signature)', () => {
  const doc = desiredFor(trust, 'dev-1', 1, MODEL);
  const tampered = structuredClone(doc);
  tampered.document.bundle!.manifest.files[0]!.size = 999;
  const resigned: SignedDesiredT = { document: tampered.document, signatures: [signDocument(tampered.document, trust.director)] };
  refusedWith('bundle_signature', resigned);
});

test('refuses: any change to the signed document (bad_signature)', () => {
  const doc = desiredFor(trust, 'dev-1', 1, MODEL);
  const tampered = structuredClone(doc);
  tampered.document.expiresAt += 1;
  refusedWith('bad_signature', tampered);
});

test('refuses: an expired director key (key_expired)', () => {
  const staleDirector = randomKey('director', Date.now() - 1);
  const keyring = buildKeyring(trust.root, [staleDirector, trust.release]);
  refusedWith('key_expired', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: null, keyring, signer: staleDirector }));
});

test('refuses: a bundle for a newer agent (incompatible_agent)', () => {
  refusedWith('incompatible_agent', desiredFor(trust, 'dev-1', 1, MODEL, { minAgentVersion: '9.0.0' }));
});

test('refuses: anything that is not a signed desired document (schema)', () => {
  for (const value of [null, 42, 'x', {}, { document: {}, signatures: [] }, { ...desiredFor(trust, 'dev-1', 1, MODEL), extra: true }]) refusedWith('schema', value);
});

test('refuses: a signature by a key the keyring revoked (key_revoked), in a desired document and in a bundle', () => {
  const stolenDirector = randomKey('director');
  const stolenRelease = randomKey('release');
  const keyring = buildKeyring(trust.root, [trust.director, trust.release], { version: 2 });
  keyring.keyring.revoked = [stolenDirector.keyId, stolenRelease.keyId];
  keyring.signatures = [signDocument(keyring.keyring, trust.root)];
  refusedWith('key_revoked', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: null, keyring, signer: stolenDirector }));
  const bundle = signManifest(makeManifest(MODEL), stolenRelease);
  refusedWith('key_revoked', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle, keyring }));
});

test('refuses: a bundle below the security floor of the keyring or of the device (below_floor), and reports the floor to persist', () => {
  const keyring = buildKeyring(trust.root, [trust.director, trust.release], { version: 2 });
  keyring.keyring.securityFloor = 5;
  keyring.signatures = [signDocument(keyring.keyring, trust.root)];
  const bundleOf = (releaseCounter: number) => signManifest(makeManifest(MODEL, { releaseCounter }), trust.release);
  refusedWith('below_floor', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: bundleOf(4), keyring }));
  // A device that saw floor 7 keeps it, whatever a keyring says.
  refusedWith('below_floor', signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: bundleOf(6), keyring }), state({ securityFloor: 7 }));
  const verdict = verifyDesired(signDesired(trust, { deviceId: 'dev-1', seq: 1, bundle: bundleOf(5), keyring }), state());
  assert.equal(verdict.status === 'accepted' && verdict.securityFloor, 5);
});
