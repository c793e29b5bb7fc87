/**
 * The demo vibration classifier: a STAND-IN until the real model trained on vibration features
 * exists (a later issue). It has the real model's interface — input `features` float32
 * `[batch, 16]`, output `probabilities` float32 `[batch, 4]` over the classes below — so that
 * bundles, rollouts, the agent's pipeline and the demo fleet can run end to end, but its
 * weights are random (He-initialized from a seeded PRNG): its predictions mean nothing.
 *
 * Deterministic: the same seed gives identical bytes (and so the same digest) on every machine.
 */
import { gaussianArray, mulberry32 } from '@cairn/shared';
import { writeMlpOnnx, type MlpLayer, type MlpSpec } from './onnx-writer.js';

export const DEMO_CLASSES = ['healthy', 'imbalance', 'misalignment', 'bearing_fault'] as const;
export const DEMO_INPUT_NAME = 'features';
export const DEMO_OUTPUT_NAME = 'probabilities';
export const DEMO_FEATURES = 16;
export const DEMO_HIDDEN = 32;
export const DEMO_DEFAULT_SEED = 42;

export interface DemoModel {
  bytes: Uint8Array;
  spec: MlpSpec;
  classes: string[];
}

export function buildDemoModel(opts: { seed?: number } = {}): DemoModel {
  const seed = opts.seed ?? DEMO_DEFAULT_SEED;
  const rng = mulberry32(seed);
  const layer = (inSize: number, outSize: number, activation: MlpLayer['activation']): MlpLayer => ({
    weights: gaussianArray(rng, inSize * outSize, Math.sqrt(2 / inSize)),
    bias: gaussianArray(rng, outSize, 0.01),
    inSize,
    outSize,
    activation,
  });
  const classes = [...DEMO_CLASSES];
  const spec: MlpSpec = {
    inputName: DEMO_INPUT_NAME,
    outputName: DEMO_OUTPUT_NAME,
    inputSize: DEMO_FEATURES,
    layers: [layer(DEMO_FEATURES, DEMO_HIDDEN, 'relu'), layer(DEMO_HIDDEN, classes.length, 'none')],
    softmax: true,
    metadata: {
      'cairn.model': 'demo-vibration-stand-in',
      'cairn.classes': JSON.stringify(classes),
      'cairn.seed': String(seed >>> 0),
    },
  };
  return { bytes: writeMlpOnnx(spec), spec, classes };
}
