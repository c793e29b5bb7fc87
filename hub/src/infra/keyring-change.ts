/**
 * The next keyring version for one change (pure: no files, no seeds). Every new version renews
 * the keyring's expiry and carries the revocations and the security floor forward, so a device
 * that skips versions loses nothing.
 *
 * - `rotate`: a new key of the role (in `fresh`) signs from now on. The previous **director**
 *   key leaves the keyring at once (the hub re-signs every live desired document with the new
 *   one when the keyring is installed, so nothing it signed is still needed). The previous
 *   **release** key stays listed, verify-only, until it expires or is revoked: bundles it
 *   signed — in the registry and on devices — keep verifying.
 * - `revoke`: the key leaves the keyring and joins `revoked`; devices that accepted this
 *   version refuse its signatures with `key_revoked`.
 * - `floor`: the lowest `releaseCounter` devices install (`below_floor`); it only rises.
 *
 * `fresh` are the keys the hub made for this version (the rotated role's, a revoked signer's
 * replacement, replacements for expired signers); expired keys leave the keyring.
 */
import { KEYRING_REVOKED_LIMIT, type KeyRoleT, type KeyringKeyT, type KeyringT } from '@cairn/shared';

/** Lifetime of a keyring version and of a new release or director key. */
export const KEY_LIFETIME_MS = 365 * 24 * 3600 * 1000;

export type KeyringChange = { kind: 'rotate'; role: KeyRoleT } | { kind: 'revoke'; keyId: string } | { kind: 'floor'; releaseCounter: number };

export class KeyringChangeError extends Error {
  constructor(
    readonly kind: 'unknown_key' | 'floor_lowered',
    message: string,
  ) {
    super(message);
  }
}

export function nextKeyring(current: KeyringT, change: KeyringChange, fresh: KeyringKeyT[], now: number): KeyringT {
  let keys = current.keys.filter((k) => k.expiresAt > now);
  let revoked = current.revoked ?? [];
  let securityFloor = current.securityFloor ?? 0;
  switch (change.kind) {
    case 'rotate':
      if (change.role === 'director') keys = keys.filter((k) => k.role !== 'director');
      break;
    case 'revoke':
      if (!current.keys.some((k) => k.keyId === change.keyId)) throw new KeyringChangeError('unknown_key', `key ${change.keyId} is not in keyring version ${current.version}`);
      keys = keys.filter((k) => k.keyId !== change.keyId);
      revoked = [...revoked.filter((id) => id !== change.keyId), change.keyId].slice(-KEYRING_REVOKED_LIMIT);
      break;
    case 'floor':
      if (change.releaseCounter < securityFloor) throw new KeyringChangeError('floor_lowered', `the security floor is ${securityFloor}; it cannot be lowered to ${change.releaseCounter}`);
      securityFloor = change.releaseCounter;
      break;
  }
  keys = [...keys, ...fresh];
  return {
    version: current.version + 1,
    issuedAt: now,
    expiresAt: now + KEY_LIFETIME_MS,
    keys,
    ...(revoked.length > 0 ? { revoked } : {}),
    ...(securityFloor > 0 ? { securityFloor } : {}),
  };
}
