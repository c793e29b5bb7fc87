/**
 * Password hashing with scrypt (node:crypto): a random 16-byte salt per password, N=2^15, r=8,
 * p=1 (32 MiB, about 50–100 ms here), 32-byte key, compared in constant time. The parameters are
 * stored with each hash, so raising them later leaves existing hashes verifiable.
 *
 * Format: `scrypt$<N>$<r>$<p>$<salt base64>$<key base64>`.
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

const N = 2 ** 15;
const R = 8;
const P = 1;
const KEY_BYTES = 32;

function derive(password: string, salt: Buffer, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, KEY_BYTES, { ...options, maxmem: 256 * options.N! * options.r! }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, { N, r: R, p: P });
  return ['scrypt', N, R, P, salt.toString('base64'), key.toString('base64')].join('$');
}

/** False for a wrong password and for a stored value that is not a hash this module wrote. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = stored.split('$');
  if (scheme !== 'scrypt' || !salt || !key) return false;
  const expected = Buffer.from(key, 'base64');
  const actual = await derive(password, Buffer.from(salt, 'base64'), { N: Number(n), r: Number(r), p: Number(p) });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/**
 * A hash of a password nobody knows: a login for an unknown username verifies against it, so the
 * answer takes as long as for a real user and timing does not reveal which usernames exist.
 */
let unknownUser: Promise<string> | undefined;
export const unknownUserHash = (): Promise<string> => (unknownUser ??= hashPassword(randomBytes(16).toString('hex')));
