/**
 * The hub's signing keys and the root-signed keyring (DESIGN §3).
 *
 * On first start the hub generates three Ed25519 keys in `<data>/keys/` (mode 0600):
 * `root` (the trust anchor devices pin; a later capability moves it offline), `release` (signs
 * bundle manifests) and `director` (signs desired documents). The keyring listing the release
 * and director keys is signed by root once and kept in `keyring.json`, so the exact same bytes
 * are served until the keyring is rotated. Secret seeds never leave this module except to sign.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { signDocument, signingKeyFromSeed, verifyKeyring, type SignedKeyringT, type SigningKey, type KeyringT, type SignatureT } from '@cairn/shared';

const YEAR_MS = 365 * 24 * 3600 * 1000;

export interface HubKeys {
  rootPublicKey: Uint8Array;
  rootKeyId: string;
  signedKeyring: SignedKeyringT;
  signManifest(manifest: unknown): SignatureT;
  signDesired(document: unknown): SignatureT;
  /** Public description of the keys (never the seeds). */
  describe(): { keyId: string; role: string; publicKey: string; expiresAt: number }[];
}

export function loadOrCreateKeys(dataDir: string, now = Date.now()): HubKeys {
  const dir = join(dataDir, 'keys');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const root = signingKeyFromSeed(loadOrCreateSeed(join(dir, 'root.key')), 'root', Number.POSITIVE_INFINITY);
  const keyringFile = join(dir, 'keyring.json');
  let signedKeyring: SignedKeyringT | null = null;
  if (existsSync(keyringFile)) {
    signedKeyring = JSON.parse(readFileSync(keyringFile, 'utf8')) as SignedKeyringT;
    verifyKeyring(signedKeyring, root.publicKey, 0, now); // a keyring that no longer verifies is a hard error
  }
  const release = signingKeyFromSeed(loadOrCreateSeed(join(dir, 'release.key')), 'release', signedKeyring ? expiryOf(signedKeyring.keyring, 'release') : now + YEAR_MS);
  const director = signingKeyFromSeed(loadOrCreateSeed(join(dir, 'director.key')), 'director', signedKeyring ? expiryOf(signedKeyring.keyring, 'director') : now + YEAR_MS);
  if (!signedKeyring) {
    const keyring: KeyringT = {
      version: 1,
      issuedAt: now,
      expiresAt: now + YEAR_MS,
      keys: [release, director].map((k) => ({ keyId: k.keyId, role: k.role as 'release' | 'director', publicKey: b64(k.publicKey), expiresAt: k.expiresAt })),
    };
    signedKeyring = { keyring, signatures: [signDocument(keyring, root)] };
    writeAtomically(keyringFile, JSON.stringify(signedKeyring, null, 2), 0o644);
  }
  const listed = new Set(signedKeyring.keyring.keys.map((k) => k.keyId));
  for (const k of [release, director]) {
    if (!listed.has(k.keyId)) throw new Error(`${k.role} key ${k.keyId} is not in ${keyringFile}; the key files and the keyring disagree`);
  }
  const ring = signedKeyring;
  return {
    rootPublicKey: root.publicKey,
    rootKeyId: root.keyId,
    signedKeyring: ring,
    signManifest: (manifest) => signDocument(manifest, release),
    signDesired: (document) => signDocument(document, director),
    describe: () => [
      { keyId: root.keyId, role: 'root', publicKey: b64(root.publicKey), expiresAt: 0 },
      ...ring.keyring.keys.map((k) => ({ keyId: k.keyId, role: k.role, publicKey: k.publicKey, expiresAt: k.expiresAt })),
    ],
  };
}

function expiryOf(keyring: KeyringT, role: SigningKey['role']): number {
  return keyring.keys.find((k) => k.role === role)?.expiresAt ?? 0;
}

function loadOrCreateSeed(file: string): Uint8Array {
  if (existsSync(file)) {
    const seed = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
    if (seed.length !== 32) throw new Error(`${file} does not hold a 32-byte Ed25519 seed`);
    return seed;
  }
  const seed = randomBytes(32);
  writeAtomically(file, seed.toString('base64') + '\n', 0o600);
  return seed;
}

function writeAtomically(file: string, content: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode, flush: true });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
