/**
 * API authentication (minimal until operator accounts and roles land): every `/api/` route
 * needs `Authorization: Bearer <admin token>`, except routes marked `config: { public: true }`.
 *
 * On first start the hub writes a random admin token to `<data>/admin-token` (mode 0600) and
 * logs the file's path, never the token. Only a SHA-256 of the token is kept in memory for
 * comparison, in constant time.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ADMIN_TOKEN_FILE = 'admin-token';

export interface TokenCheck {
  tokenFile: string;
  created: boolean;
  verify(token: string | undefined): boolean;
}

export function loadOrCreateAdminToken(dataDir: string): TokenCheck {
  const tokenFile = join(dataDir, ADMIN_TOKEN_FILE);
  let created = false;
  if (!existsSync(tokenFile)) {
    writeFileSync(tokenFile, `cairn_${randomBytes(24).toString('base64url')}\n`, { mode: 0o600, flush: true });
    created = true;
  }
  const expected = digest(readFileSync(tokenFile, 'utf8').trim());
  return {
    tokenFile,
    created,
    verify: (token) => token !== undefined && token.length > 0 && token.length < 512 && timingSafeEqual(digest(token), expected),
  };
}

export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)$/i.exec(header);
  return match?.[1];
}

const digest = (s: string) => createHash('sha256').update(s).digest();
