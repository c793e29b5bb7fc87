/**
 * Reference image directories (`firmware-images/<id>/`: model.onnx + manifest.json) as the CLI
 * and the demo publish them: the model must match its manifest's digest and size; the
 * manifest's sections travel with it, and the hub signs the result with its own release key.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sha256Hex, type ManifestT, type SignedManifestT } from '@cairn/shared';
import type { HubClient } from './hub-client.js';

export class ImageError extends Error {}

export interface ImageDir {
  manifest: ManifestT;
  model: Buffer;
  sections: Record<string, unknown>;
}

export function readImage(dir: string): ImageDir {
  let signed: SignedManifestT;
  let model: Buffer;
  try {
    signed = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as SignedManifestT;
    model = readFileSync(join(dir, 'model.onnx'));
  } catch (err) {
    throw new ImageError(`${dir} is not an image directory (model.onnx and manifest.json): ${(err as Error).message}`);
  }
  const file = signed.manifest?.files?.[0];
  if (!file || sha256Hex(model) !== file.digest || model.length !== file.size) throw new ImageError(`${dir}/model.onnx does not match its manifest (digest or size)`);
  // The image's own quantization results are its builder's claims, not this hub's measurement:
  // they travel in the lineage, next to the key that signed the image.
  const { features, lineage, health, driftReference, quantization } = signed.manifest;
  const provenance = { image: { name: signed.manifest.name, version: signed.manifest.version, signedBy: signed.signatures.map((s) => s.keyId), ...(quantization ? { quantization } : {}) } };
  const sections = Object.fromEntries(Object.entries({ features, lineage: { ...lineage, ...provenance }, health, driftReference }).filter(([, v]) => v !== undefined));
  return { manifest: signed.manifest, model, sections };
}

/** Uploads an image's model and publishes it under the image's name and version. */
export async function publishImage(api: HubClient, dir: string): Promise<{ name: string; version: string; digest: string }> {
  const image = readImage(dir);
  const { digest } = await api.request<{ digest: string }>('POST', '/api/v1/uploads', undefined, { raw: image.model });
  const body = { name: image.manifest.name, version: image.manifest.version, model: digest, sections: image.sections, ...(image.manifest.description ? { description: image.manifest.description } : {}) };
  return api.request('POST', '/api/v1/models/publish', body);
}
