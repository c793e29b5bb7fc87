/**
 * Operators' passwords: hashed and verified as `password` secrets (infra/secrets.ts — stronger
 * scrypt cost and NFC normalization than the random secrets the hub hands out).
 */
import { randomBytes } from 'node:crypto';
import { hashSecret, verifySecret } from '../../infra/secrets.js';

export const hashPassword = (password: string): Promise<string> => hashSecret(password, 'password');

/** False for a wrong password and for a stored value that is not a hash the hub wrote. */
export const verifyPassword = (password: string, stored: string): Promise<boolean> => verifySecret(password, stored, 'password');

/**
 * A hash of a password nobody knows: a login for an unknown username verifies against it, so the
 * answer takes as long as for a real user and timing does not reveal which usernames exist.
 */
let unknownUser: Promise<string> | undefined;
export const unknownUserHash = (): Promise<string> => (unknownUser ??= hashPassword(randomBytes(16).toString('hex')));
