/**
 * Test fixtures that craft what a hub signs — keyrings, manifests and desired documents —
 * including deliberately bad ones. Keys come from random seeds, so every test has its own trust
 * root. Everything is signed with shared's signDocument, exactly as the hub does.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  sha256Hex,
  signDocument,
  signingKeyFromSeed,
  type DesiredDocumentT,
  type KeyringT,
  type ManifestT,
  type SignedDesiredT,
  type SignedKeyringT,
  type SignedManifestT,
  type SigningKey,
  type SigningRole,
  type KeyRoleT,
} from '@cairn/shared';

export const HOUR_MS = 3_600_000;
const YEAR_MS = 365 * 24 * HOUR_MS;

export function randomKey(role: SigningRole, expiresAt = Date.now() + YEAR_MS): SigningKey {
  return signingKeyFromSeed(new Uint8Array(randomBytes(32)), role, expiresAt);
}

export interface KeyringOptions {
  version?: number;
  issuedAt?: number;
  expiresAt?: number;
}

/** A keyring listing `keys`, signed by `root`. */
export function buildKeyring(root: SigningKey, keys: SigningKey[], options: KeyringOptions = {}): SignedKeyringT {
  const now = Date.now();
  const keyring: KeyringT = {
    version: options.version ?? 1,
    issuedAt: options.issuedAt ?? now,
    expiresAt: options.expiresAt ?? now + YEAR_MS,
    keys: keys.map((k) => {
      if (k.role === 'root') throw new Error('a keyring lists release and director keys only');
      return { keyId: k.keyId, role: k.role, publicKey: Buffer.from(k.publicKey).toString('base64'), expiresAt: k.expiresAt };
    }),
  };
  return { keyring, signatures: [signDocument(keyring, root)] };
}

export interface TrustFixture {
  root: SigningKey;
  director: SigningKey;
  release: SigningKey;
  /** The pinned trust anchor, as the agent config takes it. */
  rootPublicKey: string;
  keyring: SignedKeyringT;
}

export function createTrustFixture(options: KeyringOptions = {}): TrustFixture {
  const root = randomKey('root', Number.MAX_SAFE_INTEGER);
  const director = randomKey('director');
  const release = randomKey('release');
  return { root, director, release, rootPublicKey: Buffer.from(root.publicKey).toString('base64'), keyring: buildKeyring(root, [director, release], options) };
}

export interface ManifestOptions {
  name?: string;
  version?: string;
  releaseCounter?: number;
  /** Overrides what the manifest says about the file (to build mismatching bundles). */
  digest?: string;
  size?: number;
  minAgentVersion?: string;
  inputs?: ManifestT['inputs'];
  outputs?: ManifestT['outputs'];
}

/** A manifest for the demo model's interface: input `features` [batch,16], output `probabilities` [batch,4]. */
export function makeManifest(bytes: Uint8Array, options: ManifestOptions = {}): ManifestT {
  return {
    schema: 'cairn.bundle/v1',
    name: options.name ?? 'demo',
    version: options.version ?? '1.0.0',
    releaseCounter: options.releaseCounter ?? 1,
    createdAt: Date.now(),
    files: [{ role: 'model', path: 'model.onnx', digest: options.digest ?? sha256Hex(bytes), size: options.size ?? bytes.byteLength, mediaType: 'application/onnx' }],
    inputs: options.inputs ?? [{ name: 'features', type: 'float32', dims: ['batch', 16] }],
    outputs: options.outputs ?? [{ name: 'probabilities', type: 'float32', dims: ['batch', 4] }],
    compatibility: { minAgentVersion: options.minAgentVersion ?? '0.0.1' },
  };
}

/** Signs a manifest; by default with the release key (a director key makes a `key_role` bundle). */
export function signManifest(manifest: ManifestT, key: SigningKey): SignedManifestT {
  return { manifest, signatures: [signDocument(manifest, key)] };
}

export interface DesiredOptions {
  deviceId: string;
  seq: number;
  bundle: SignedManifestT | null;
  deploymentId?: string;
  issuedAt?: number;
  expiresAt?: number;
  /** Default: the fixture's director key. */
  signer?: SigningKey;
  /** Default: the fixture's keyring. */
  keyring?: SignedKeyringT;
}

export function signDesired(trust: TrustFixture, options: DesiredOptions): SignedDesiredT {
  const now = Date.now();
  const document: DesiredDocumentT = {
    deviceId: options.deviceId,
    seq: options.seq,
    issuedAt: options.issuedAt ?? now,
    expiresAt: options.expiresAt ?? now + HOUR_MS,
    deploymentId: options.deploymentId ?? `dep-${options.seq}`,
    keyring: options.keyring ?? trust.keyring,
    bundle: options.bundle,
  };
  return { document, signatures: [signDocument(document, options.signer ?? trust.director)] };
}

/** The usual case in one call: a release-signed bundle of `bytes` in a director-signed desired document. */
export function desiredFor(trust: TrustFixture, deviceId: string, seq: number, bytes: Uint8Array, manifest: ManifestOptions = {}): SignedDesiredT {
  return signDesired(trust, { deviceId, seq, bundle: signManifest(makeManifest(bytes, manifest), trust.release) });
}

/**
 * The keys of a running hub, read from its data directory as an attacker with a copy of it (or
 * a test holding the keys) has them: the online root (with the root offline, `root` is a key no
 * device trusts) and the
 * keys the hub signs with right now, with `keyring` the one in force.
 */
export function hubTrust(dataDir: string, keyring: SignedKeyringT): TrustFixture {
  const dir = join(dataDir, 'keys');
  const seedOf = (file: string) => new Uint8Array(Buffer.from(readFileSync(join(dir, file), 'utf8').trim(), 'base64'));
  const listedKey = (role: KeyRoleT): SigningKey => {
    // The signer of a role is its listed key with a seed on disk and the latest expiry (hub/src/infra/keys.ts).
    const candidates = keyring.keyring.keys
      .filter((k) => k.role === role)
      .sort((a, b) => b.expiresAt - a.expiresAt)
      .map((k) => [k, [`${role}-${k.keyId}.key`, `${role}.key`].find((f) => existsSync(join(dir, f)) && signingKeyFromSeed(seedOf(f), role, 0).keyId === k.keyId)] as const);
    const found = candidates.find(([, file]) => file !== undefined);
    if (!found) throw new Error(`no ${role} seed in ${dir}`);
    return signingKeyFromSeed(seedOf(found[1]!), role, found[0].expiresAt);
  };
  const rootPublicKey = readFileSync(join(dir, 'root.pub'), 'utf8').trim();
  const root = existsSync(join(dir, 'root.key')) ? signingKeyFromSeed(seedOf('root.key'), 'root', Number.MAX_SAFE_INTEGER) : randomKey('root', Number.MAX_SAFE_INTEGER);
  return { root, director: listedKey('director'), release: listedKey('release'), rootPublicKey, keyring };
}
