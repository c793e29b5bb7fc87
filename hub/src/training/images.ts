/**
 * The reference images in `firmware-images/`: signed bundles of the `pdm-vibration` recipe
 * (1.0.0 and 1.1.0, each as the default int8 image and its fp32 parent) and faulty variants of
 * 1.0.0 for rollback drills. `npm run images` rebuilds them; every step is seeded and the
 * manifests carry a fixed creation time, so a rebuild reproduces the same model digests.
 *
 * Each image is a directory `<id>/` holding `model.onnx` and `manifest.json` (the signed
 * manifest, `{manifest, signatures}`), signed with the DEMO release key committed in
 * `firmware-images/keys/` — a key for demos and tests only, never for a real fleet.
 * `index.json` and `INDEX.md` list every image.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildDriftReference, sha256Hex, signDocument, signingKeyFromSeed, type ManifestT, type SignedManifestT } from '@cairn/shared';
import { MIN_AGENT_VERSION } from '../modules/registry/publisher.js';
import { inspectOnnx } from '../modules/registry/onnx-inspect.js';
import { quantizeInt8, QUANTIZATION_SCHEME } from './quantizer.js';
import { evaluateQuantization } from './quantization-gate.js';
import { argmax } from './metrics.js';
import { mlpForward } from './onnx-writer.js';
import { trainPdmVibration, RECIPE_NAME, type PdmVersion, type TrainedPdmModel } from './recipes/pdm-vibration.js';
import { faultyModel, type FaultyVariant } from './recipes/faulty.js';

/** Fixed creation time of every reference manifest (reproducible bytes). */
export const IMAGES_CREATED_AT = Date.UTC(2026, 10, 1);
/** The gate every int8 image must pass against its fp32 parent on the held-out set. */
export const IMAGE_TOLERANCE = { maxAccuracyDropPoints: 0.5 } as const;

export interface ImageEntry {
  id: string;
  name: string;
  version: string;
  precision: 'fp32' | 'int8';
  purpose: string;
  digest: string;
  size: number;
  releaseCounter: number;
  /** Held-out accuracy (points) where meaningful. */
  accuracy: number | null;
}

export interface BuildImagesOptions {
  outDir: string;
  releaseKeySeed: Uint8Array;
  log?: (line: string) => void;
}

export async function buildReferenceImages({ outDir, releaseKeySeed, log = () => undefined }: BuildImagesOptions): Promise<ImageEntry[]> {
  const releaseKey = signingKeyFromSeed(releaseKeySeed, 'release', Number.MAX_SAFE_INTEGER);
  const entries: ImageEntry[] = [];
  const write = async (image: { id: string; name: string; version: string; precision: 'fp32' | 'int8'; purpose: string; onnx: Uint8Array; accuracy: number | null; sections: Partial<ManifestT> }) => {
    const dir = join(outDir, image.id);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'model.onnx'), image.onnx);
    const signature = await inspectOnnx(join(dir, 'model.onnx'));
    const releaseCounter = entries.length + 1;
    const digest = sha256Hex(image.onnx);
    const manifest: ManifestT = {
      schema: 'cairn.bundle/v1',
      name: image.name,
      version: image.version,
      releaseCounter,
      createdAt: IMAGES_CREATED_AT,
      files: [{ role: 'model', path: 'model.onnx', digest, size: image.onnx.length, mediaType: 'application/onnx' }],
      inputs: signature.inputs,
      outputs: signature.outputs,
      description: image.purpose,
      compatibility: { minAgentVersion: MIN_AGENT_VERSION },
      ...image.sections,
    };
    const signed: SignedManifestT = { manifest, signatures: [signDocument(manifest, releaseKey)] };
    writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(signed, null, 2)}\n`);
    entries.push({ id: image.id, name: image.name, version: image.version, precision: image.precision, purpose: image.purpose, digest, size: image.onnx.length, releaseCounter, accuracy: image.accuracy });
    log(`${image.id}: sha256:${digest.slice(0, 16)}… ${image.onnx.length} bytes${image.accuracy === null ? '' : `, accuracy ${image.accuracy}%`}`);
  };

  let base: TrainedPdmModel | null = null;
  for (const version of ['1.0.0', '1.1.0'] as PdmVersion[]) {
    log(`training ${RECIPE_NAME} ${version}…`);
    const model = trainPdmVibration(version);
    if (version === '1.0.0') base = model;
    const quantized = quantizeInt8(model.onnx);
    const gate = await evaluateQuantization({
      parent: model.onnx,
      child: quantized.model,
      calibration: { inputs: model.test.features, count: model.test.count, labels: model.test.labels },
      tolerance: IMAGE_TOLERANCE,
      latencyRuns: 50,
    });
    if (!gate.passed) throw new Error(`${RECIPE_NAME} ${version}: the int8 model fails its gate: ${gate.failures.join('; ')}`);
    log(`${version}: int8 ${gate.accuracy!.child}% vs fp32 ${gate.accuracy!.parent}%, size ×${gate.size.ratio.toFixed(3)}, latency ×${gate.latency.ratio.toFixed(2)} (this run)`);
    const common = commonSections(model);
    await write({ id: `pdm-vibration-${version}-fp32`, name: `${RECIPE_NAME}-fp32`, version, precision: 'fp32', purpose: `fp32 parent of ${RECIPE_NAME} ${version}`, onnx: model.onnx, accuracy: gate.accuracy!.parent, sections: common });
    await write({
      id: `pdm-vibration-${version}-int8`,
      name: RECIPE_NAME,
      version,
      precision: 'int8',
      purpose: `${RECIPE_NAME} ${version}, int8 (the default image)`,
      onnx: quantized.model,
      accuracy: gate.accuracy!.child,
      sections: {
        ...common,
        quantization: {
          scheme: QUANTIZATION_SCHEME,
          parent: { digest: sha256Hex(model.onnx), size: model.onnx.length, accuracy: gate.accuracy!.parent },
          size: quantized.model.length,
          sizeRatio: round(gate.size.ratio, 4),
          accuracy: gate.accuracy!.child,
          accuracyDropPoints: round(gate.accuracy!.dropPoints, 2),
          agreement: round(gate.agreement, 4),
          tolerance: IMAGE_TOLERANCE,
          quantizedWeights: quantized.report.quantized.length,
          skipped: quantized.report.skipped.map((s) => ({ node: s.node, reason: s.reason })),
        },
      },
    });
  }

  const faulty: [FaultyVariant, string][] = [
    ['nan', 'FAULTY (rollback drill): outputs NaN'],
    ['slow', 'FAULTY (rollback drill): same outputs as 1.0.0 through thousands of times the compute'],
    ['collapsed', 'FAULTY (rollback drill): always predicts "healthy"'],
  ];
  for (const [variant, purpose] of faulty) {
    const onnx = faultyModel(base!.spec, variant);
    await write({ id: `pdm-vibration-1.0.1-${variant}`, name: RECIPE_NAME, version: `1.0.1-${variant}`, precision: 'fp32', purpose, onnx, accuracy: null, sections: commonSections(base!) });
  }

  writeFileSync(join(outDir, 'index.json'), `${JSON.stringify({ releaseKey: Buffer.from(releaseKey.publicKey).toString('base64'), images: entries }, null, 2)}\n`);
  writeFileSync(join(outDir, 'INDEX.md'), indexMarkdown(entries));
  return entries;
}

/** Sections every image of a trained model carries: features, lineage, drift reference, golden probes. */
function commonSections(model: TrainedPdmModel): Partial<ManifestT> {
  const { train, test, spec } = model;
  const trainOut = mlpForward(spec, train.features, train.count);
  const predicted = argmax(trainOut, train.count, model.classes.length);
  // Golden probes: two held-out rows of each class with the fp32 outputs they must reproduce.
  const probes: { input: number[]; expected: number[] }[] = [];
  for (let c = 0; c < model.classes.length; c++) {
    let taken = 0;
    for (let r = 0; r < test.count && taken < 2; r++) {
      if (test.labels[r] !== c) continue;
      const input = test.features.subarray(r * test.featureCount, (r + 1) * test.featureCount);
      probes.push({ input: Array.from(input, (v) => round(v, 6)), expected: Array.from(mlpForward(spec, Float32Array.from(input, (v) => round(v, 6)), 1), (v) => round(v, 6)) });
      taken++;
    }
  }
  return {
    features: model.features,
    lineage: model.lineage,
    driftReference: buildDriftReference({ features: train.features, featureCount: train.featureCount, featureNames: train.featureNames, predictedClasses: predicted, classes: model.classes }) as unknown as Record<string, unknown>,
    health: { schema: 'cairn.health/v1', probes, probeTolerance: 0.02 },
  };
}

function indexMarkdown(entries: ImageEntry[]): string {
  const rows = entries.map((e) => `| \`${e.id}\` | ${e.name}@${e.version} | ${e.precision} | \`${e.digest.slice(0, 16)}…\` | ${e.size.toLocaleString('en-US')} | ${e.accuracy === null ? '—' : `${e.accuracy} %`} | ${e.purpose} |`);
  return `# Reference images

Built by \`npm run images\` (hub/src/training/images.ts); signed with the DEMO release key in
\`keys/\`. Accuracy is on the held-out simulated test set (other seeds than training). Full
digests are in \`index.json\` and each image's \`manifest.json\`.

| image | model | precision | sha256 | bytes | accuracy | purpose |
|---|---|---|---|---|---|---|
${rows.join('\n')}
`;
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;

export function readReleaseSeed(file: string): Uint8Array {
  const seed = Buffer.from(readFileSync(file, 'utf8').trim(), 'base64');
  if (seed.length !== 32) throw new Error(`${file} does not hold a 32-byte Ed25519 seed`);
  return seed;
}

