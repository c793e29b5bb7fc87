/**
 * The hub's signing keys and the root-signed keyring (DESIGN §3).
 *
 * Files in `<data>/keys/` (seeds base64, mode 0600):
 * - `root.pub`: the root public key devices pin. `root.key`, its seed, exists only while the
 *   root is *online* (the default on a first start); `cairn keys init --offline` creates the
 *   root elsewhere, or moves an online one out, and the hub then signs keyrings only through a
 *   root holder (`PUT /api/v1/keys/keyring`).
 * - `keyring.json`: the root-signed keyring in force, served verbatim in every desired document.
 * - release and director seeds: `release.key` / `director.key` (the first generation) and
 *   `<role>-<keyId>.key` (made by a rotation). Only keys the keyring lists sign: per role, the
 *   listed key with a seed here and the latest expiry. So a rotation becomes effective in one
 *   atomic step, the replacement of `keyring.json`.
 * - `keyring.pending.json`: the unsigned next keyring (a draft), until a root signature over
 *   exactly these bytes installs it.
 *
 * Secret seeds never leave this module except as signatures.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  canonicalJson,
  keyIdOf,
  signDocument,
  signingKeyFromSeed,
  verifyKeyring,
  type KeyRoleT,
  type KeyringT,
  type SignatureT,
  type SignedKeyringT,
  type SigningKey,
} from '@cairn/shared';
import { KEY_LIFETIME_MS, nextKeyring, type KeyringChange } from './keyring-change.js';
const ROLES: readonly KeyRoleT[] = ['release', 'director'];

export interface KeyDescription {
  keyId: string;
  role: 'root' | KeyRoleT;
  publicKey: string;
  /** Epoch ms; 0 for the root key (it does not expire). */
  expiresAt: number;
  /** `signing`: the hub signs with it; `verify-only`: listed, still valid, no longer used to sign; `online`/`offline`: where the root seed is. */
  status: 'signing' | 'verify-only' | 'online' | 'offline';
}

/** Why a keyring cannot be installed; the keys module maps each to a coded HTTP error. */
export class KeyringInstallError extends Error {
  constructor(
    readonly kind: 'no_draft' | 'not_the_draft' | 'signature',
    message: string,
  ) {
    super(message);
  }
}

export class HubKeys {
  private signers = new Map<KeyRoleT, SigningKey>();
  private ring: SignedKeyringT;

  private constructor(
    private readonly dir: string,
    readonly rootPublicKey: Uint8Array,
    private readonly root: SigningKey | null,
    ring: SignedKeyringT,
  ) {
    this.ring = ring;
    this.signers = signersOf(dir, ring);
  }

  /** Loads the keys in `<data>/keys`, creating an online root and the first keyring on a first start. */
  static load(dataDir: string, now: number): HubKeys {
    const dir = keysDir(dataDir);
    const rootSeed = readSeedIfAny(join(dir, 'root.key'));
    const keyringFile = join(dir, 'keyring.json');
    if (!rootSeed && !existsSync(join(dir, 'root.pub'))) {
      // Never a new root beside an existing keyring: devices pin the old one.
      if (existsSync(keyringFile)) throw new Error(`${dir} has a keyring but neither root.key nor root.pub; restore root.pub (the public key devices pin) rather than start with a new root`);
      const root = generateKey('root', Number.POSITIVE_INFINITY);
      writeSecret(join(dir, 'root.key'), root.seed);
      createFirstKeyring(dir, root, now);
      return HubKeys.load(dataDir, now);
    }
    const rootPublicKey = rootSeed ? signingKeyFromSeed(rootSeed, 'root', Number.POSITIVE_INFINITY).publicKey : Buffer.from(readFileSync(join(dir, 'root.pub'), 'utf8').trim(), 'base64');
    if (rootSeed && !existsSync(join(dir, 'root.pub'))) writeAtomically(join(dir, 'root.pub'), b64(rootPublicKey) + '\n', 0o644);
    if (!existsSync(keyringFile)) throw new Error(`${keyringFile} is missing: with the root key offline the hub cannot make a keyring (run cairn keys init --offline on a fresh data directory)`);
    const ring = JSON.parse(readFileSync(keyringFile, 'utf8')) as SignedKeyringT;
    // A keyring the root did not sign is a hard error. An expired one is not: the hub must start
    // so that a new keyring can be installed (devices refuse the expired one meanwhile).
    verifyKeyring(ring, rootPublicKey, 0, Number.NEGATIVE_INFINITY);
    return new HubKeys(dir, rootPublicKey, rootSeed ? signingKeyFromSeed(rootSeed, 'root', Number.POSITIVE_INFINITY) : null, ring);
  }

  get rootKeyId(): string {
    return keyIdOf(this.rootPublicKey);
  }

  /** True when the root seed is on the hub, so the hub can sign a keyring itself. */
  get rootOnline(): boolean {
    return this.root !== null;
  }

  get signedKeyring(): SignedKeyringT {
    return this.ring;
  }

  get securityFloor(): number {
    return this.ring.keyring.securityFloor ?? 0;
  }

  signManifest(manifest: unknown): SignatureT {
    return signDocument(manifest, this.signer('release'));
  }

  signDesired(document: unknown): SignatureT {
    return signDocument(document, this.signer('director'));
  }

  /** The key id the hub signs `role` documents with. */
  signingKeyId(role: KeyRoleT): string {
    return this.signer(role).keyId;
  }

  /** Public description of the keys (never the seeds). */
  describe(): KeyDescription[] {
    const signing = new Set([...this.signers.values()].map((k) => k.keyId));
    return [
      { keyId: this.rootKeyId, role: 'root', publicKey: b64(this.rootPublicKey), expiresAt: 0, status: this.root ? 'online' : 'offline' },
      ...this.ring.keyring.keys.map((k) => ({ keyId: k.keyId, role: k.role, publicKey: k.publicKey, expiresAt: k.expiresAt, status: signing.has(k.keyId) ? ('signing' as const) : ('verify-only' as const) })),
    ];
  }

  /** The unsigned next keyring waiting for a root signature, if any. */
  get draft(): KeyringT | null {
    const file = join(this.dir, 'keyring.pending.json');
    return existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as KeyringT) : null;
  }

  /**
   * Prepares the next keyring version for `change` and keeps it as the draft (replacing any
   * earlier draft). Keys it introduces — the rotated role's, a revoked signer's replacement, and
   * a replacement for any signer that has expired (so that every change also renews) — are
   * generated now and their seeds written, unused until a root-signed keyring lists them.
   */
  prepare(change: KeyringChange, now: number): KeyringT {
    const roles = new Set(ROLES.filter((role) => this.signer(role).expiresAt <= now));
    if (change.kind === 'rotate') roles.add(change.role);
    if (change.kind === 'revoke') for (const [role, key] of this.signers) if (key.keyId === change.keyId) roles.add(role);
    const fresh = [...roles].map((role) => {
      const key = generateKey(role, now + KEY_LIFETIME_MS);
      writeSecret(join(this.dir, `${role}-${key.keyId}.key`), key.seed);
      return listing(key);
    });
    const draft = nextKeyring(this.ring.keyring, change, fresh, now);
    writeAtomically(join(this.dir, 'keyring.pending.json'), JSON.stringify(draft, null, 2), 0o644);
    return draft;
  }

  /** Signs `keyring` with the root key when it is on the hub; null when the root is offline. */
  signWithRoot(keyring: KeyringT): SignedKeyringT | null {
    return this.root ? { keyring, signatures: [signDocument(keyring, this.root)] } : null;
  }

  /**
   * Installs a root-signed keyring that is exactly the pending draft: from this call on, the
   * hub signs with the keys it lists and every desired document carries it. Every seed but the
   * signers' is then deleted: the hub keeps only the private halves it signs with (a revoked or
   * retired key's private half must not outlive its use).
   */
  install(signed: SignedKeyringT, now: number): KeyringT {
    const draft = this.draft;
    if (!draft) throw new KeyringInstallError('no_draft', 'there is no keyring draft to install; prepare a change first');
    if (canonicalJson(draft) !== canonicalJson(signed.keyring)) throw new KeyringInstallError('not_the_draft', `the keyring is not the pending draft (version ${draft.version}); sign the draft exactly as the hub returned it`);
    try {
      verifyKeyring(signed, this.rootPublicKey, this.ring.keyring.version + 1, now);
    } catch (err) {
      throw new KeyringInstallError('signature', `the keyring does not verify against the root key ${this.rootKeyId}: ${(err as Error).message}`);
    }
    const signers = signersOf(this.dir, signed); // before anything is written: a keyring the hub could not sign with is refused
    writeAtomically(join(this.dir, 'keyring.json'), JSON.stringify(signed, null, 2), 0o644);
    rmSync(join(this.dir, 'keyring.pending.json'), { force: true });
    this.ring = signed;
    this.signers = signers;
    const signing = new Set([...this.signers.values()].map((k) => k.keyId));
    for (const [file, key] of seedFiles(this.dir)) if (!signing.has(key.keyId)) rmSync(join(this.dir, file), { force: true });
    return signed.keyring;
  }

  private signer(role: KeyRoleT): SigningKey {
    const key = this.signers.get(role);
    if (!key) throw new Error(`the hub holds no ${role} key that the keyring lists`);
    return key;
  }

  /** What expires within `withinMs`: the keyring and the keys the hub signs with (renew them with a rotation). */
  expiringSoon(now: number, withinMs: number): string[] {
    const soon: string[] = [];
    const { keyring } = this.ring;
    if (keyring.expiresAt - now < withinMs) soon.push(`keyring version ${keyring.version} expires ${new Date(keyring.expiresAt).toISOString()}`);
    for (const [role, key] of this.signers) if (key.expiresAt - now < withinMs) soon.push(`the ${role} key ${key.keyId} expires ${new Date(key.expiresAt).toISOString()}`);
    return soon;
  }
}

/** Per role: the listed key with a seed on disk and the latest expiry (unexpired or not: devices judge expiry). */
function signersOf(dir: string, ring: SignedKeyringT): Map<KeyRoleT, SigningKey> {
  const seeds = new Map([...seedFiles(dir).values()].map((k) => [k.keyId, k.seed]));
  const signers = new Map<KeyRoleT, SigningKey>();
  for (const listed of ring.keyring.keys) {
    const seed = seeds.get(listed.keyId);
    const best = signers.get(listed.role);
    if (seed && (!best || listed.expiresAt > best.expiresAt)) signers.set(listed.role, signingKeyFromSeed(seed, listed.role, listed.expiresAt));
  }
  for (const role of ROLES) if (!signers.has(role)) throw new Error(`no ${role} key in ${dir} is listed in keyring version ${ring.keyring.version}; the key files and the keyring disagree`);
  return signers;
}

/**
 * `cairn keys init --offline`: on a data directory without keys, creates the root key at
 * `rootKeyOut` (never in the data directory) and the first keyring; on one whose root is still
 * online (the hub's first start made it), moves the root seed to `rootKeyOut`. Either way the hub
 * keeps `root.pub` and the keyring. Run it while the hub is stopped.
 */
export function initOfflineRoot(dataDir: string, rootKeyOut: string, now: number): { created: boolean; rootKeyId: string } {
  const dir = keysDir(dataDir);
  if (existsSync(rootKeyOut)) throw new Error(`${rootKeyOut} exists; choose a new path for the root key`);
  const onlineSeed = readSeedIfAny(join(dir, 'root.key'));
  const hasKeyring = existsSync(join(dir, 'keyring.json'));
  if (hasKeyring && !onlineSeed) throw new Error(`the root key of ${dataDir} is already offline`);
  const root = onlineSeed ? signingKeyFromSeed(onlineSeed, 'root', Number.POSITIVE_INFINITY) : generateKey('root', Number.POSITIVE_INFINITY);
  writeSecret(rootKeyOut, root.seed, 'wx');
  writeAtomically(join(dir, 'root.pub'), b64(root.publicKey) + '\n', 0o644);
  if (!hasKeyring) createFirstKeyring(dir, root, now);
  rmSync(join(dir, 'root.key'), { force: true });
  return { created: !hasKeyring, rootKeyId: root.keyId };
}

/** Reads a root key file (a base64 Ed25519 seed, as `keys init --offline` writes it). */
export function readRootKey(file: string): SigningKey {
  const seed = readSeedIfAny(file);
  if (!seed) throw new Error(`${file} does not exist`);
  return signingKeyFromSeed(seed, 'root', Number.POSITIVE_INFINITY);
}

function createFirstKeyring(dir: string, root: SigningKey, now: number): void {
  const keys = ROLES.map((role) => {
    const key = generateKey(role, now + KEY_LIFETIME_MS);
    writeSecret(join(dir, `${role}.key`), key.seed);
    return listing(key);
  });
  const keyring: KeyringT = { version: 1, issuedAt: now, expiresAt: now + KEY_LIFETIME_MS, keys };
  writeAtomically(join(dir, 'keyring.json'), JSON.stringify({ keyring, signatures: [signDocument(keyring, root)] }, null, 2), 0o644);
}

function keysDir(dataDir: string): string {
  const dir = join(dataDir, 'keys');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

const listing = (key: SigningKey) => ({ keyId: key.keyId, role: key.role as KeyRoleT, publicKey: b64(key.publicKey), expiresAt: key.expiresAt });

function generateKey(role: SigningKey['role'], expiresAt: number): SigningKey {
  return signingKeyFromSeed(new Uint8Array(randomBytes(32)), role, expiresAt);
}

/** Release and director seed files by name: `release.key`, `director.key`, `<role>-<keyId>.key`. */
function seedFiles(dir: string): Map<string, SigningKey> {
  const found = new Map<string, SigningKey>();
  for (const file of readdirSync(dir)) {
    const match = /^(release|director)(-[0-9a-f]{16})?\.key$/.exec(file);
    if (match) found.set(file, signingKeyFromSeed(readSeedIfAny(join(dir, file))!, match[1] as KeyRoleT, 0));
  }
  return found;
}

function readSeedIfAny(file: string): Uint8Array | null {
  if (!existsSync(file)) return null;
  const seed = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (seed.length !== 32) throw new Error(`${file} does not hold a 32-byte Ed25519 seed`);
  return new Uint8Array(seed);
}

function writeSecret(file: string, seed: Uint8Array, flag: 'w' | 'wx' = 'w'): void {
  if (flag === 'wx') {
    writeFileSync(file, b64(seed) + '\n', { mode: 0o600, flag, flush: true });
    return;
  }
  writeAtomically(file, b64(seed) + '\n', 0o600);
}

function writeAtomically(file: string, content: string, mode: number): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, content, { mode, flush: true });
  chmodSync(tmp, mode);
  renameSync(tmp, file);
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
