/**
 * Verification of what the hub sends a device (DESIGN §3), shared so the hub can check its own
 * output with the very code the agent runs.
 *
 * Trust chain: pinned root public key → keyring (root-signed, versioned, expiring) → director key
 * (signs the desired document) and release key (signs the bundle manifest). The director key
 * alone cannot make a device run a bundle that no release key signed.
 */
import { Compile } from 'typebox/compile';
import { SignedDesired, type DesiredDocumentT, type KeyringKeyT, type KeyringT, type SignatureT, type SignedDesiredT, type SignedKeyringT, type SignedManifestT } from '../protocol/schemas.js';
import { describeErrors } from '../protocol/payloads.js';
import { keyIdOf } from '../crypto/ed25519.js';
import { canonicalJson } from '../crypto/canonical-json.js';
import { verifySignature } from './signing.js';
import { TrustError } from './reasons.js';
import { compareSemVer } from './semver.js';

const desiredValidator = Compile(SignedDesired);

/** Verifies a keyring against the pinned root key and the highest version already accepted. */
export function verifyKeyring(signed: SignedKeyringT, rootPublicKey: Uint8Array, minVersion: number, now: number): KeyringT {
  const rootKeyId = keyIdOf(rootPublicKey);
  const rootSig = signed.signatures.find((s) => s.keyId === rootKeyId);
  if (!rootSig || !verifySignature(signed.keyring, rootSig, rootPublicKey)) throw new TrustError('keyring_signature');
  if (signed.keyring.version < minVersion) {
    throw new TrustError('keyring_rollback', `version ${signed.keyring.version} < ${minVersion}`);
  }
  if (signed.keyring.expiresAt <= now) throw new TrustError('keyring_expired');
  return signed.keyring;
}

/**
 * Finds a signature by a key of `role` in the keyring that verifies. Distinguishes an unknown
 * key, a revoked key (one the keyring names in `revoked`; a keyring never lists a key it
 * revokes), a key of the wrong role, an expired key and a bad signature, the later of these
 * being the reason reported.
 */
export function verifyByRole(document: unknown, signatures: SignatureT[], keyring: KeyringT, role: KeyringKeyT['role'], now: number): KeyringKeyT {
  let failure: TrustError = new TrustError('unknown_key');
  for (const signature of signatures) {
    const key = keyring.keys.find((k) => k.keyId === signature.keyId);
    if (!key) {
      if (keyring.revoked?.includes(signature.keyId)) failure = new TrustError('key_revoked', `key ${signature.keyId}`);
      continue;
    }
    if (key.role !== role) {
      failure = new TrustError('key_role', `key ${key.keyId} is a ${key.role} key, not ${role}`);
      continue;
    }
    if (key.expiresAt <= now) {
      failure = new TrustError('key_expired', `key ${key.keyId}`);
      continue;
    }
    if (verifySignature(document, signature, Buffer.from(key.publicKey, 'base64'))) return key;
    failure = new TrustError('bad_signature', `key ${key.keyId}`);
  }
  throw failure;
}

export function verifyManifest(bundle: SignedManifestT, keyring: KeyringT, now: number): void {
  try {
    verifyByRole(bundle.manifest, bundle.signatures, keyring, 'release', now);
  } catch (err) {
    // A key of the wrong role or a revoked key keeps its own reason: each names an attack.
    if (err instanceof TrustError && err.reason !== 'key_role' && err.reason !== 'key_revoked') throw new TrustError('bundle_signature', err.message);
    throw err;
  }
}

export interface DeviceTrustState {
  deviceId: string;
  rootPublicKey: Uint8Array;
  /** Highest keyring version accepted so far (0: none). */
  keyringVersion: number;
  /** Highest security floor accepted so far (0: none): a keyring cannot lower it. */
  securityFloor: number;
  /** Seq of the last accepted desired document (-1: none) and its canonical fingerprint. */
  lastSeq: number;
  lastFingerprint: string | null;
  agentVersion: string;
  now: number;
}

export type DesiredVerdict =
  /** `securityFloor`: the floor to persist (the higher of the device's and the keyring's). */
  | { status: 'accepted'; document: DesiredDocumentT; keyring: KeyringT; fingerprint: string; securityFloor: number }
  /** The same document as the last one accepted (a retained re-delivery): nothing to do. */
  | { status: 'unchanged' };

/**
 * Verifies a desired document for this device. Throws TrustError with the reason; returns
 * `unchanged` for a re-delivery of the document already accepted.
 */
export function verifyDesired(value: unknown, state: DeviceTrustState): DesiredVerdict {
  if (!desiredValidator.Check(value)) throw new TrustError('schema', describeErrors(desiredValidator, value));
  const signed: SignedDesiredT = value;
  const { document } = signed;
  const keyring = verifyKeyring(document.keyring, state.rootPublicKey, state.keyringVersion, state.now);
  verifyByRole(document, signed.signatures, keyring, 'director', state.now);
  if (document.deviceId !== state.deviceId) throw new TrustError('wrong_device', `for ${document.deviceId}`);
  const fingerprint = canonicalJson(document);
  if (document.seq === state.lastSeq) {
    if (fingerprint === state.lastFingerprint) return { status: 'unchanged' };
    throw new TrustError('equivocation', `seq ${document.seq}`);
  }
  if (document.seq < state.lastSeq) throw new TrustError('replayed_seq', `seq ${document.seq} < ${state.lastSeq}`);
  if (document.expiresAt <= state.now) throw new TrustError('expired', `expired at ${new Date(document.expiresAt).toISOString()}`);
  const securityFloor = Math.max(state.securityFloor, keyring.securityFloor ?? 0);
  if (document.bundle) {
    verifyManifest(document.bundle, keyring, state.now);
    const { releaseCounter } = document.bundle.manifest;
    if (releaseCounter < securityFloor) throw new TrustError('below_floor', `releaseCounter ${releaseCounter} < floor ${securityFloor}`);
    const needed = document.bundle.manifest.compatibility.minAgentVersion;
    if (compareSemVer(state.agentVersion, needed) < 0) throw new TrustError('incompatible_agent', `needs ${needed}, agent is ${state.agentVersion}`);
  }
  return { status: 'accepted', document, keyring, fingerprint, securityFloor };
}
