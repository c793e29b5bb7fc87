/**
 * Recipe `pdm-vibration`: the reference predictive-maintenance model. Simulated vibration
 * windows (shared/src/sim) → the `cairn.vibration` feature pipeline (shared/src/features) → a
 * small MLP (trainer.ts) that classifies healthy, imbalance, misalignment, outer-race and
 * inner-race faults. Every step is seeded, so a version rebuilds to identical bytes.
 *
 * Versions: 1.0.0 learns three machine types; 1.1.0 is retrained with all five presets
 * (wider coverage, the kind of update a rollout ships). The held-out test set uses other seeds
 * than training.
 */
import { featurePipelineDescriptor } from '@cairn/shared/features/vibration-features.js';
import { generateDataset, type VibrationDataset } from '@cairn/shared/sim/dataset.js';
import { FAULT_CLASSES, MACHINE_TYPE_NAMES } from '@cairn/shared/sim/machine.js';
import { trainMlp } from '../trainer.js';
import { evaluate } from '../metrics.js';
import { datasetDigest } from '../dataset-split.js';
import { writeMlpOnnx, type MlpSpec } from '../onnx-writer.js';

export const RECIPE_NAME = 'pdm-vibration';

interface RecipeVersion {
  machines: readonly string[];
  seed: number;
  windowsPerClass: number;
  parentVersion?: string;
}

export const PDM_VERSIONS: Record<'1.0.0' | '1.1.0', RecipeVersion> = {
  '1.0.0': { machines: ['pump-1800', 'fan-1200', 'motor-3600'], seed: 1_000, windowsPerClass: 360 },
  '1.1.0': { machines: MACHINE_TYPE_NAMES, seed: 1_100, windowsPerClass: 480, parentVersion: '1.0.0' },
};
export type PdmVersion = keyof typeof PDM_VERSIONS;

export const TRAINING = { hidden: [192, 96], epochs: 300, batchSize: 32, learningRate: 0.003, patience: 30, l2: 1e-4 } as const;

export interface TrainedPdmModel {
  version: PdmVersion;
  spec: MlpSpec;
  /** The fp32 ONNX model. */
  onnx: Uint8Array;
  classes: readonly string[];
  train: VibrationDataset;
  test: VibrationDataset;
  /** Held-out accuracy of the fp32 model, 0–100. */
  testAccuracy: number;
  /** The manifest's `lineage` and `features` sections. */
  lineage: Record<string, unknown>;
  features: Record<string, unknown>;
}

export function trainPdmVibration(version: PdmVersion): TrainedPdmModel {
  const recipe = PDM_VERSIONS[version];
  const train = generateDataset({ seed: recipe.seed, machines: recipe.machines, windowsPerClass: recipe.windowsPerClass });
  // Held out: other seeds, every machine type of the recipe.
  const test = generateDataset({ seed: recipe.seed + 7_919, machines: recipe.machines, windowsPerClass: 200 });
  const result = trainMlp(
    { features: train.features, labels: train.labels, count: train.count, featureCount: train.featureCount, classCount: train.classCount },
    { ...TRAINING, hidden: [...TRAINING.hidden], seed: recipe.seed, metadata: { 'cairn.model': RECIPE_NAME, 'cairn.version': version, 'cairn.classes': JSON.stringify(FAULT_CLASSES) } },
  );
  const held = evaluate(result.spec, test.features, test.labels);
  const testAccuracy = round(held.accuracy * 100, 2);
  return {
    version,
    spec: result.spec,
    onnx: writeMlpOnnx(result.spec),
    classes: FAULT_CLASSES,
    train,
    test,
    testAccuracy,
    lineage: {
      recipe: RECIPE_NAME,
      recipeVersion: version,
      seed: recipe.seed,
      trainingData: { digest: datasetDigest(train.features, train.labels), rows: train.count, machines: [...recipe.machines] },
      testData: { digest: datasetDigest(test.features, test.labels), rows: test.count },
      training: { ...TRAINING, hidden: [...TRAINING.hidden], bestEpoch: result.bestEpoch, validationAccuracy: round(result.metrics.validationAccuracy * 100, 2) },
      metrics: { testAccuracy, macroF1: round(held.macroF1, 4) },
      ...(recipe.parentVersion ? { parentVersion: recipe.parentVersion } : {}),
    },
    features: { ...featurePipelineDescriptor(), classes: [...FAULT_CLASSES] },
  };
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
