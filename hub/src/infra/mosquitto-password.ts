/**
 * Mosquitto 2 password hashes (`password_file` lines), so that the hub can write the password
 * file of an external Mosquitto for the credentials it issues (`cairn broker config --mosquitto`).
 *
 * Format, as `mosquitto_passwd` writes it (Mosquitto 2, `-H sha512-pbkdf2`, the default):
 * `$7$<iterations>$<base64 salt>$<base64 hash>`, PBKDF2-HMAC-SHA512 over the password, 12 random
 * salt bytes, 64 hash bytes, standard base64 with padding. Checked against `mosquitto_passwd`
 * output and the real broker in the tests.
 *
 * 101 iterations is `mosquitto_passwd`'s own default. The passwords hashed here are 256-bit random
 * secrets, which no amount of key stretching makes harder to guess; more iterations would only
 * make every device CONNECT cost the broker more CPU.
 */
import { pbkdf2Sync, randomBytes } from 'node:crypto';

const ITERATIONS = 101;
const SALT_BYTES = 12;
const HASH_BYTES = 64;

export function mosquittoPasswordHash(password: string, salt: Buffer = randomBytes(SALT_BYTES)): string {
  const hash = pbkdf2Sync(password, salt, ITERATIONS, HASH_BYTES, 'sha512');
  return `$7$${ITERATIONS}$${salt.toString('base64')}$${hash.toString('base64')}`;
}
