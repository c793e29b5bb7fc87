/**
 * Builds and signs one device's desired document. The seq is strictly greater than every seq
 * this hub ever issued to the device and than the last seq the device reports having applied,
 * so agents never take a fresh document for a replay — even after the hub's database was lost.
 */
import { verifyDesired, type DesiredDocumentT, type SignedDesiredT, type SignedManifestT } from '@cairn/shared';
import type { HubContext } from '../../infra/context.js';
import type { DesiredRow } from './deployments.repository.js';

export function signDesiredFor(ctx: HubContext, deviceId: string, deploymentId: string, bundle: SignedManifestT | null): DesiredRow {
  const now = ctx.clock();
  const previous = ctx.deployments.desiredFor(deviceId)?.seq ?? 0;
  const reported = ctx.devices.get(deviceId)?.reported?.lastDesiredSeq ?? 0;
  const document: DesiredDocumentT = {
    deviceId,
    seq: Math.max(previous, reported) + 1,
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
