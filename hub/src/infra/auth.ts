/**
 * Credential formats shared by the hub and its CLI. Secrets are random, shown once, and kept
 * only as SHA-256 digests (API tokens, session ids) or scrypt hashes (passwords, see
 * modules/operators/passwords.ts).
 *
 * On first start the hub writes the bootstrap admin's API token to `<data>/admin-token` and its
 * password to `<data>/admin-password` (both mode 0600) and logs the files' paths, never their
 * contents.
 */
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';

export const ADMIN_TOKEN_FILE = 'admin-token';
export const ADMIN_PASSWORD_FILE = 'admin-password';

export const SESSION_COOKIE = 'cairn_session';
/** Console requests that change state must carry this header (modules/operators/access-hook.ts). */
export const CSRF_HEADER = 'x-cairn-csrf';

/** Every API token starts with this, so a leaked one is recognisable (secret scanners, logs). */
export const TOKEN_PREFIX = 'cairn_';

export const newApiToken = (): string => `${TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`;
export const newSessionId = (): string => randomBytes(32).toString('base64url');
/** 24 characters of base64url: 144 bits, typed once from the file or the CLI's output. */
export const newPassword = (): string => randomBytes(18).toString('base64url');

/** The digest a token or session id is stored and looked up by. */
export const secretDigest = (secret: string): string => createHash('sha256').update(secret).digest('hex');

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

/** Writes a secret for the local operator: owner-only, flushed before anyone is told where it is. */
export function writeSecretFile(file: string, secret: string): void {
  writeFileSync(file, `${secret}\n`, { mode: 0o600, flush: true });
}
