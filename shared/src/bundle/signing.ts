/**
 * Signing of Cairn documents: an Ed25519 signature over the RFC 8785 canonical JSON of the
 * document, carried beside it as `{keyId, sig}`.
 */
import { canonicalBytes } from '../crypto/canonical-json.js';
import { ed25519, keyIdOf } from '../crypto/ed25519.js';
import type { KeyRoleT, SignatureT } from '../protocol/schemas.js';

export type SigningRole = KeyRoleT | 'root';

/** A private signing key held by the hub (or offline, for root). `seed` is the 32-byte secret. */
export interface SigningKey {
  keyId: string;
  role: SigningRole;
  seed: Uint8Array;
  publicKey: Uint8Array;
  /** Epoch ms after which devices refuse signatures by this key (root keys: Infinity). */
  expiresAt: number;
}

export function signingKeyFromSeed(seed: Uint8Array, role: SigningRole, expiresAt: number): SigningKey {
  const publicKey = ed25519.publicKeyFromSeed(seed);
  return { keyId: keyIdOf(publicKey), role, seed, publicKey, expiresAt };
}

export function signDocument(document: unknown, key: SigningKey): SignatureT {
  return { keyId: key.keyId, sig: Buffer.from(ed25519.sign(canonicalBytes(document), key.seed)).toString('base64') };
}

export function verifySignature(document: unknown, signature: SignatureT, publicKey: Uint8Array): boolean {
  return ed25519.verify(canonicalBytes(document), Buffer.from(signature.sig, 'base64'), publicKey);
}
