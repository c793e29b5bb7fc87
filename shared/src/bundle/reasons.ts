/**
 * Reason codes for refusing a desired document, a keyring, a bundle or its blob, and for a
 * model that failed its golden probes or its trial (DESIGN §4). They travel in
 * `desired_rejected` and `deployment` events and label the hub's metrics, so the set is closed
 * and each code names one check.
 */
export const REJECTION_REASONS = {
  schema: 'the document does not match its schema',
  keyring_signature: 'the keyring is not signed by the pinned root key',
  keyring_expired: 'the keyring has expired',
  keyring_rollback: 'the keyring version is older than one already accepted',
  unknown_key: 'no signature by a key the keyring lists',
  key_role: 'the signing key is not allowed to sign this kind of document',
  key_expired: 'the signing key has expired',
  key_revoked: 'the signing key has been revoked by the root key',
  bad_signature: 'the signature does not verify',
  bundle_signature: 'the bundle manifest is not signed by a valid release key',
  wrong_device: 'the document is addressed to another device',
  replayed_seq: 'the sequence number is older than the last accepted one',
  equivocation: 'a different document with the same sequence number was already accepted',
  expired: 'the document has expired',
  incompatible_agent: 'the bundle needs a newer agent',
  below_floor: "the bundle's releaseCounter is below the fleet's signed security floor (a downgrade)",
  digest_mismatch: 'the downloaded bytes do not match the manifest digest',
  size_mismatch: 'the blob is larger or smaller than the manifest says',
  download_failed: 'the blob could not be downloaded',
  load_failed: 'the model could not be loaded by the runtime',
  insufficient_disk: 'there is not enough free disk space for the blob',
  health_policy: "the manifest's health section is malformed",
  probe_error: 'a golden probe failed to run',
  probe_non_finite: 'a golden probe produced NaN or Infinity',
  probe_mismatch: "a golden probe's outputs are outside the tolerance",
  probe_latency: 'a golden probe took longer to compute than the latency budget',
  trial_error_rate: 'the error rate during the trial exceeded the health policy',
  trial_latency: 'the p95 latency during the trial exceeded the health policy',
  trial_non_finite: 'the model produced NaN or Infinity during the trial',
  trial_collapsed: "the model's outputs collapsed to a constant during the trial",
  crashed_in_trial: 'the agent restarted while the model was on trial',
  crashed_while_loading: 'the agent restarted repeatedly while loading the model',
  rollback_requested: 'an operator asked for a rollback',
} as const;

export type RejectionReason = keyof typeof REJECTION_REASONS;

export class TrustError extends Error {
  constructor(
    readonly reason: RejectionReason,
    detail?: string,
  ) {
    super(detail ? `${REJECTION_REASONS[reason]}: ${detail}` : REJECTION_REASONS[reason]);
    this.name = 'TrustError';
  }
}
