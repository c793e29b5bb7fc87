/**
 * Builds and signs one device's desired document. The seq is strictly greater than every seq
 * this hub ever issued to the device, or, when the hub has no record of the device (its
 * database was lost), than the last seq the device reports having applied — so agents never
 * take a fresh document for a replay.
 */
import { verifyDesired, type DesiredDocumentT, type SignedDesiredT, type SignedManifestT } from '@cairn/shared';
import type { HubContext } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { formatModelRef } from '../registry/model-ref.js';
import type { DesiredRow } from './deployments.repository.js';

/** The largest reported seq the hub adopts; far below Number.MAX_SAFE_INTEGER. */
const MAX_ADOPTED_SEQ = 2 ** 48;

export function signDesiredFor(ctx: HubContext, deviceId: string, deploymentId: string, bundle: SignedManifestT | null): DesiredRow {
  const now = ctx.clock();
  const floor = ctx.keys.securityFloor;
  if (bundle && bundle.manifest.releaseCounter < floor) throw Errors.belowFloor(formatModelRef(bundle.manifest), bundle.manifest.releaseCounter, floor);
  // The hub's own record is authoritative; what a device reports counts only when the hub has
  // none (its database was lost), and is clamped so a device cannot push seq past the schema.
  const issued = ctx.deployments.desiredFor(deviceId)?.seq;
  const reported = Math.min(ctx.devices.get(deviceId)?.reported?.lastDesiredSeq ?? 0, MAX_ADOPTED_SEQ);
  const document: DesiredDocumentT = {
    deviceId,
    seq: (issued ?? reported) + 1,
    issuedAt: now,
    expiresAt: now + Math.round(ctx.config.desired.ttlHours * 3600_000),
    deploymentId,
    keyring: ctx.keys.signedKeyring,
    bundle,
  };
  const signed: SignedDesiredT = { document, signatures: [ctx.keys.signDesired(document)] };
  // The hub checks its own output with the agent's verifier: a document that would be refused
  // on the device is a hub bug and must never be published.
  verifyDesired(signed, {
    deviceId,
    rootPublicKey: ctx.keys.rootPublicKey,
    keyringVersion: 0,
    securityFloor: 0,
    lastSeq: -1,
    lastFingerprint: null,
    agentVersion: '999.0.0',
    now,
  });
  return {
    deviceId,
    seq: document.seq,
    deploymentId,
    digest: bundle?.manifest.files[0]?.digest ?? null,
    document: JSON.stringify(signed),
    expiresAt: document.expiresAt,
  };
}

/** The bundle a live desired document names (null: run no model). */
export function bundleOf(row: DesiredRow): SignedManifestT | null {
  return (JSON.parse(row.document) as SignedDesiredT).document.bundle;
}

/** Devices whose live desired document names a bundle below `floor`: a floor that high would strand them. */
export function devicesBelowFloor(ctx: HubContext, floor: number): string[] {
  return ctx.deployments
    .allDesired()
    .filter((row) => (bundleOf(row)?.manifest.releaseCounter ?? floor) < floor)
    .map((row) => row.deviceId);
}
