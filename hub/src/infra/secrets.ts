/**
 * Secrets the hub keeps only as hashes: the ones it hands out (device MQTT passwords, enrollment
 * tokens) and operators' passwords. scrypt (node:crypto, on the libuv thread pool so the event
 * loop keeps serving) with a per-secret salt; the stored form names its parameters so they can
 * be raised later, and older hashes stay verifiable: `scrypt$<N>$<r>$<p>$<salt>$<hash>` (salt and
 * hash in base64url; plain base64 from earlier hubs decodes the same).
 *
 * Two costs: random 256-bit secrets need no stretching beyond N=2^14; human-chosen passwords get
 * N=2^15 (32 MiB, about 50–100 ms here) and Unicode NFC normalization, so the same password typed
 * on two keyboards verifies.
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const COST = { secret: 16_384, password: 32_768 } as const;
export type SecretKind = keyof typeof COST;
const R = 8;
const P = 1;
const KEY_LENGTH = 32;
const MAX_SECRET_LENGTH = 1024;

/** A new random secret: `prefix` + 32 random bytes in base64url (256 bits). */
export function newSecret(prefix = ''): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

export async function hashSecret(secret: string, kind: SecretKind = 'secret'): Promise<string> {
  const salt = randomBytes(16);
  const n = COST[kind];
  const hash = await derive(prepare(secret, kind), salt, n, R, P);
  return ['scrypt', n, R, P, salt.toString('base64url'), hash.toString('base64url')].join('$');
}

/** Constant-time check of `secret` against a stored hash; false for a malformed stored value or an empty or oversized secret. */
export async function verifySecret(secret: string, stored: string, kind: SecretKind = 'secret'): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !hash || secret.length === 0 || secret.length > MAX_SECRET_LENGTH) return false;
  const expected = Buffer.from(hash, 'base64url');
  const actual = await derive(prepare(secret, kind), Buffer.from(salt, 'base64url'), Number(n), Number(r), Number(p));
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

function prepare(secret: string, kind: SecretKind): string {
  return kind === 'password' ? secret.normalize('NFC') : secret;
}

function derive(secret: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(secret, salt, KEY_LENGTH, { N: n, r, p, maxmem: 256 * n * r }, (err, key) => (err ? reject(err) : resolve(key))),
  );
}
