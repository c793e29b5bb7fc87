/**
 * The one way a model version enters the registry: given a stored blob and what is known about
 * it, write the bundle manifest, sign it with the release key, and record it. Both the raw push
 * (`POST /api/v1/models`) and the publishing pipeline (quantize, gate, drift reference) end here.
 */
import { canonicalJson, HealthPolicyError, MAX_JSON_PAYLOAD_BYTES, resolveHealthPolicy, type ManifestT, type SignedManifestT, type TensorSpecT } from '@cairn/shared';
import type { HubContext } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import type { AuditActor } from '../audit/audit-log.js';
import { formatModelRef } from './model-ref.js';

/** Largest canonical manifest the hub signs: three quarters of a desired document's budget. */
export const MAX_MANIFEST_BYTES = Math.floor(MAX_JSON_PAYLOAD_BYTES * 0.75);

/** The oldest agent that understands the manifests this hub writes. */
export const MIN_AGENT_VERSION = '0.1.0';

export interface PublishInput {
  name: string;
  version: string;
  description?: string;
  digest: string;
  size: number;
  inputs: TensorSpecT[];
  outputs: TensorSpecT[];
  /** Optional manifest sections (features, quantization, driftReference, health, lineage). */
  sections?: Pick<ManifestT, 'features' | 'quantization' | 'driftReference' | 'health' | 'lineage'>;
}

/** Publishes as `actor`, who is recorded as the version's pusher (see approval-policy.ts) and in the audit log. */
export function publishModel(ctx: HubContext, actor: AuditActor, input: PublishInput): SignedManifestT {
  const ref = formatModelRef(input);
  if (!ctx.blobs.has(input.digest)) throw new Error(`blob ${input.digest} must be stored before ${ref} is published`);
  if (input.sections?.health) {
    // The same check devices run before they use the policy: refuse here, not on the whole fleet.
    try {
      resolveHealthPolicy(input.sections.health, input);
    } catch (err) {
      if (err instanceof HealthPolicyError) throw Errors.badHealthPolicy(err.message);
      throw err;
    }
  }
  const manifest: ManifestT = {
    schema: 'cairn.bundle/v1',
    name: input.name,
    version: input.version,
    releaseCounter: ctx.registry.nextReleaseCounter(),
    createdAt: ctx.clock(),
    files: [{ role: 'model', path: 'model.onnx', digest: input.digest, size: input.size, mediaType: 'application/onnx' }],
    inputs: input.inputs,
    outputs: input.outputs,
    compatibility: { minAgentVersion: MIN_AGENT_VERSION },
    ...(input.description ? { description: input.description } : {}),
    ...stripUndefined(input.sections ?? {}),
  };
  // The signed manifest travels inside every desired document, which devices refuse above the
  // protocol's payload limit: keep room for the keyring and the document's own fields.
  const size = Buffer.byteLength(canonicalJson(manifest));
  if (size > MAX_MANIFEST_BYTES) throw Errors.manifestTooLarge(size, MAX_MANIFEST_BYTES);
  const bundle = { manifest, signatures: [ctx.keys.signManifest(manifest)] };
  ctx.db.transaction(() => {
    if (!ctx.registry.insert(bundle, ctx.clock(), actor.actor)) throw Errors.modelExists(ref);
    const quantized = (manifest.quantization as { scheme?: string; parent?: { digest?: string } } | undefined) ?? null;
    ctx.audit.append(actor, {
      action: 'model.publish',
      target: `model:${ref}`,
      after: { digest: input.digest, size: input.size, releaseCounter: manifest.releaseCounter, ...(quantized?.parent ? { quantization: quantized.scheme, parent: quantized.parent.digest } : {}) },
    });
  })();
  ctx.logger.info({ model: ref, digest: input.digest, size: input.size }, 'model published');
  ctx.bus.emit('model.pushed', { name: input.name, version: input.version, digest: input.digest });
  return bundle;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
