/**
 * Trains a multi-layer perceptron classifier in plain TypeScript and returns it as an `MlpSpec`
 * that `writeMlpOnnx` turns into the bundle's model.
 *
 * Recipe: ReLU hidden layers, a softmax output trained with cross-entropy, He-initialized
 * weights (N(0, 2/fanIn), zero biases), mini-batch Adam (β1 0.9, β2 0.999, ε 1e-8, bias
 * corrected) with optional L2 on the weights (adds `l2·W` to the gradient, biases exempt), a
 * stratified validation split, and early stopping on validation loss that restores the best
 * epoch's weights.
 *
 * Normalization: mean and population std per feature are computed on the TRAINING split only
 * (std floored at STD_FLOOR so a constant feature stays finite) and become the spec's
 * `normalization`, which the ONNX graph applies itself: a device feeds raw features. Training
 * inputs are scaled exactly as the graph and `mlpForward` scale them.
 *
 * Determinism: the result is a pure function of (data, options). One `mulberry32(seed)` stream
 * is consumed in a fixed order — the split (`splitForSeed` reproduces it), then the initial
 * weights layer by layer, then one shuffle of the training rows per epoch. There is no
 * Math.random, no clock, no parallelism, and every sum runs in a fixed order, so the same
 * inputs give bit-identical weights and so identical ONNX bytes and digest. (Math.exp and
 * Math.log are V8's fdlibm ports, the same on every platform; a Node upgrade that changed them
 * would show up as a rebuild with a different digest.)
 *
 * Numbers: weights live in Float32Array (the spec holds exactly what was trained, no rounding at
 * export); batch activations, gradients and Adam moments are float64 scratch, which costs
 * nothing in V8 and keeps sums from losing precision. The validation loss of each epoch is
 * measured with `mlpForward` on the raw validation rows — the same computation as the returned
 * spec — so the recorded best loss is exactly what the returned model scores.
 */
import { gaussianArray, mulberry32 } from '@cairn/shared';
import { gatherLabels, gatherRows, stratifiedSplit, validateDataset, type DatasetSplit, type LabelledDataset } from './dataset-split.js';
import { accuracy, argmax, crossEntropy } from './metrics.js';
import { mlpForward, validateMlpSpec, type MlpLayer, type MlpSpec } from './onnx-writer.js';

export const DEFAULT_INPUT_NAME = 'features';
export const DEFAULT_OUTPUT_NAME = 'probabilities';
export const DEFAULT_VALIDATION_FRACTION = 0.2;
/** Smallest std used for scaling: a constant feature maps to 0 instead of dividing by 0. */
export const STD_FLOOR = 1e-6;
export const ADAM = { beta1: 0.9, beta2: 0.999, epsilon: 1e-8 } as const;

export interface EpochRecord {
  /** 1-based. */
  epoch: number;
  /** Mean cross-entropy over the epoch's mini-batches, each measured before its update (no L2 term). */
  trainLoss: number;
  /** Cross-entropy of the whole validation split after the epoch (metrics.crossEntropy). */
  valLoss: number;
  valAccuracy: number;
}

export interface TrainOptions {
  /** Hidden layer widths, e.g. [32, 16]; [] trains a softmax regression. */
  hidden: number[];
  seed: number;
  /** Maximum number of epochs; early stopping may end sooner. */
  epochs: number;
  batchSize: number;
  learningRate: number;
  /** In (0, 1); default 0.2. Stratified by class. */
  validationFraction?: number;
  /** Stop after this many epochs without a strictly lower validation loss. */
  patience: number;
  /** L2 coefficient on weights (not biases); default 0. */
  l2?: number;
  /** Graph input and output names; default `features` and `probabilities`. */
  inputName?: string;
  outputName?: string;
  /** Copied into the spec (the ONNX metadata_props). */
  metadata?: Record<string, string>;
  onEpoch?: (record: EpochRecord) => void;
}

export interface TrainResult {
  /** The best epoch's network, with normalization and softmax inside. */
  spec: MlpSpec;
  history: EpochRecord[];
  /** 1-based epoch whose weights the spec holds: `history[bestEpoch - 1]`. */
  bestEpoch: number;
  /** True when patience ran out before `epochs`. */
  stoppedEarly: boolean;
  /** The training split's statistics: the same arrays as `spec.normalization`. */
  normalization: { mean: Float32Array; std: Float32Array };
  /** Accuracy of the returned spec on each split; the validation numbers are `history[bestEpoch - 1]`'s. */
  metrics: { trainAccuracy: number; validationAccuracy: number; validationLoss: number };
  /** Row indices of each split, for lineage and for recomputing anything on the same rows. */
  split: DatasetSplit;
}

interface LayerState {
  inSize: number;
  outSize: number;
  relu: boolean;
  weights: Float32Array;
  bias: Float32Array;
  gradWeights: Float64Array;
  gradBias: Float64Array;
  m: Float64Array;
  v: Float64Array;
  mBias: Float64Array;
  vBias: Float64Array;
}

export function trainMlp(data: LabelledDataset, options: TrainOptions): TrainResult {
  validateDataset(data);
  const validationFraction = options.validationFraction ?? DEFAULT_VALIDATION_FRACTION;
  const l2 = options.l2 ?? 0;
  validateOptions(options, validationFraction, l2);
  const { features, labels, featureCount: F, classCount: C } = data;
  const { hidden, epochs, batchSize, learningRate, patience } = options;

  const rng = mulberry32(options.seed);
  const split = stratifiedSplit(labels, C, validationFraction, rng);
  const normalization = trainingStatistics(features, F, split.train);
  const nTrain = split.train.length;
  const trainX = normalizeRows(gatherRows(features, F, split.train), F, normalization);
  const trainY = gatherLabels(labels, split.train);
  const validationX = gatherRows(features, F, split.validation);
  const validationY = gatherLabels(labels, split.validation);

  const widths = [F, ...hidden, C];
  const layers: LayerState[] = widths.slice(1).map((outSize, l) => {
    const inSize = widths[l]!;
    const size = inSize * outSize;
    return {
      inSize,
      outSize,
      relu: l < widths.length - 2,
      weights: gaussianArray(rng, size, Math.sqrt(2 / inSize)),
      bias: new Float32Array(outSize),
      gradWeights: new Float64Array(size),
      gradBias: new Float64Array(outSize),
      m: new Float64Array(size),
      v: new Float64Array(size),
      mBias: new Float64Array(outSize),
      vBias: new Float64Array(outSize),
    };
  });
  const specOf = (source: { weights: Float32Array; bias: Float32Array }[]): MlpSpec => ({
    inputName: options.inputName ?? DEFAULT_INPUT_NAME,
    outputName: options.outputName ?? DEFAULT_OUTPUT_NAME,
    inputSize: F,
    normalization,
    layers: layers.map((layer, l): MlpLayer => ({
      weights: source[l]!.weights,
      bias: source[l]!.bias,
      inSize: layer.inSize,
      outSize: layer.outSize,
      activation: layer.relu ? 'relu' : 'none',
    })),
    softmax: true,
    ...(options.metadata ? { metadata: { ...options.metadata } } : {}),
  });
  // Views of the live weights: the validation pass measures exactly the network being trained.
  const live = specOf(layers);
  validateMlpSpec(live);

  const maxBatch = Math.min(batchSize, nTrain);
  // activations[0] is the input batch, activations[l + 1] the (post-ReLU) output of layer l;
  // deltas[l + 1] is the loss gradient with respect to layer l's pre-activation output.
  const activations = widths.map((w) => new Float64Array(maxBatch * w));
  const deltas = widths.map((w) => new Float64Array(maxBatch * w));
  const order = Int32Array.from({ length: nTrain }, (_, i) => i);
  const { beta1, beta2 } = ADAM;
  let beta1Power = 1;
  let beta2Power = 1;

  const history: EpochRecord[] = [];
  let best = { epoch: 0, loss: Infinity, weights: [] as { weights: Float32Array; bias: Float32Array }[] };

  for (let epoch = 1; epoch <= epochs; epoch++) {
    shuffle(order, rng);
    let lossSum = 0;
    for (let start = 0; start < nTrain; start += batchSize) {
      const B = Math.min(batchSize, nTrain - start);
      const input = activations[0]!;
      for (let b = 0; b < B; b++) {
        const row = order[start + b]!;
        for (let c = 0; c < F; c++) input[b * F + c] = trainX[row * F + c]!;
      }
      forward(layers, activations, B);
      const batchLoss = softmaxCrossEntropyDelta(activations[layers.length]!, deltas[layers.length]!, trainY, order, start, B, C);
      if (!Number.isFinite(batchLoss)) {
        throw new RangeError(`training diverged in epoch ${epoch}: the loss is ${batchLoss}; lower learningRate (${learningRate})`);
      }
      lossSum += batchLoss;
      backward(layers, activations, deltas, B);

      beta1Power *= beta1;
      beta2Power *= beta2;
      const step = { learningRate, correction1: 1 - beta1Power, correction2: 1 - beta2Power };
      for (const layer of layers) {
        adamUpdate(layer.weights, layer.gradWeights, layer.m, layer.v, l2, step);
        adamUpdate(layer.bias, layer.gradBias, layer.mBias, layer.vBias, 0, step);
      }
    }

    if (!layers.every((l) => l.weights.every(Number.isFinite) && l.bias.every(Number.isFinite))) {
      throw new RangeError(`training diverged in epoch ${epoch}: a weight is no longer finite; lower learningRate (${learningRate})`);
    }
    const probabilities = mlpForward(live, validationX, validationY.length);
    const record: EpochRecord = {
      epoch,
      trainLoss: lossSum / nTrain,
      valLoss: crossEntropy(probabilities, validationY, C),
      valAccuracy: accuracy(argmax(probabilities, validationY.length, C), validationY),
    };
    if (Number.isNaN(record.valLoss)) {
      throw new RangeError(`training diverged in epoch ${epoch}: the validation loss is NaN; lower learningRate (${learningRate})`);
    }
    history.push(record);
    options.onEpoch?.(record);
    if (record.valLoss < best.loss) {
      best = { epoch, loss: record.valLoss, weights: layers.map((l) => ({ weights: l.weights.slice(), bias: l.bias.slice() })) };
    } else if (epoch - best.epoch >= patience) {
      break;
    }
  }

  const spec = specOf(best.weights);
  const bestRecord = history[best.epoch - 1]!;
  const trainOutputs = mlpForward(spec, gatherRows(features, F, split.train), nTrain);
  return {
    spec,
    history,
    bestEpoch: best.epoch,
    stoppedEarly: history.length < epochs,
    normalization,
    metrics: {
      trainAccuracy: accuracy(argmax(trainOutputs, nTrain, C), trainY),
      validationAccuracy: bestRecord.valAccuracy,
      validationLoss: bestRecord.valLoss,
    },
    split,
  };
}

function validateOptions(options: TrainOptions, validationFraction: number, l2: number): void {
  const fail = (message: string): never => {
    throw new RangeError(`invalid training options: ${message}`);
  };
  const positiveInt = (name: string, value: number): void => {
    if (!Number.isInteger(value) || value < 1) fail(`${name} must be a positive integer, got ${value}`);
  };
  if (!Array.isArray(options.hidden)) fail('hidden must be an array of layer widths');
  options.hidden.forEach((width, i) => positiveInt(`hidden[${i}]`, width));
  if (!Number.isInteger(options.seed)) fail(`seed must be an integer, got ${options.seed}`);
  positiveInt('epochs', options.epochs);
  positiveInt('batchSize', options.batchSize);
  positiveInt('patience', options.patience);
  if (!(Number.isFinite(options.learningRate) && options.learningRate > 0)) fail(`learningRate must be a finite number > 0, got ${options.learningRate}`);
  if (!(validationFraction > 0 && validationFraction < 1)) fail(`validationFraction must be in (0, 1), got ${validationFraction}`);
  if (!(Number.isFinite(l2) && l2 >= 0)) fail(`l2 must be a finite number ≥ 0, got ${l2}`);
}

/** Mean and population std of each feature over `rows`, summed in row order in float64. */
function trainingStatistics(features: Float32Array, width: number, rows: Int32Array): { mean: Float32Array; std: Float32Array } {
  const sum = new Float64Array(width);
  for (const row of rows) for (let c = 0; c < width; c++) sum[c] = sum[c]! + features[row * width + c]!;
  const mean64 = sum.map((s) => s / rows.length);
  const squares = new Float64Array(width);
  for (const row of rows) {
    for (let c = 0; c < width; c++) {
      const d = features[row * width + c]! - mean64[c]!;
      squares[c] = squares[c]! + d * d;
    }
  }
  const mean = Float32Array.from(mean64);
  const std = Float32Array.from(squares, (s) => Math.max(Math.fround(Math.sqrt(s / rows.length)), STD_FLOOR));
  return { mean, std };
}

/** `(x - mean) / std` with the float32 roundings of mlpForward and the ONNX Sub/Div nodes. */
function normalizeRows(x: Float32Array, width: number, { mean, std }: { mean: Float32Array; std: Float32Array }): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = Math.fround(x[i]! - mean[i % width]!) / std[i % width]!;
  return out;
}

/** One bias-corrected Adam step on `param`; `decay` is the L2 coefficient added to the gradient. */
function adamUpdate(
  param: Float32Array,
  grad: Float64Array,
  m: Float64Array,
  v: Float64Array,
  decay: number,
  step: { learningRate: number; correction1: number; correction2: number },
): void {
  const { beta1, beta2, epsilon } = ADAM;
  for (let k = 0; k < param.length; k++) {
    const g = grad[k]! + decay * param[k]!;
    const mk = (m[k] = beta1 * m[k]! + (1 - beta1) * g);
    const vk = (v[k] = beta2 * v[k]! + (1 - beta2) * g * g);
    param[k] = param[k]! - (step.learningRate * (mk / step.correction1)) / (Math.sqrt(vk / step.correction2) + epsilon);
  }
}

function shuffle(order: Int32Array, rng: () => number): void {
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = order[i]!;
    order[i] = order[j]!;
    order[j] = tmp;
  }
}

/** activations[l + 1] = act(activations[l] · W + b) for the first `B` rows. */
function forward(layers: LayerState[], activations: Float64Array[], B: number): void {
  layers.forEach((layer, l) => {
    const { inSize, outSize, weights, bias, relu } = layer;
    const h = activations[l]!;
    const z = activations[l + 1]!;
    for (let r = 0; r < B; r++) {
      const zRow = r * outSize;
      for (let j = 0; j < outSize; j++) z[zRow + j] = bias[j]!;
      for (let i = 0; i < inSize; i++) {
        const hi = h[r * inSize + i]!;
        // ReLU outputs are often exactly 0; skipping them changes no sum.
        if (hi === 0) continue;
        const wRow = i * outSize;
        for (let j = 0; j < outSize; j++) z[zRow + j] = z[zRow + j]! + hi * weights[wRow + j]!;
      }
      if (relu) for (let j = 0; j < outSize; j++) if (z[zRow + j]! < 0) z[zRow + j] = 0;
    }
  });
}

/**
 * Turns the logits of the batch into the gradient of the mean cross-entropy with respect to
 * them, `(softmax(z) - onehot) / B`, written to `delta`; returns the batch's summed loss
 * (log-sum-exp form, so it stays finite for any finite logits).
 */
function softmaxCrossEntropyDelta(logits: Float64Array, delta: Float64Array, labels: Int32Array, order: Int32Array, start: number, B: number, C: number): number {
  let loss = 0;
  for (let r = 0; r < B; r++) {
    const base = r * C;
    let max = -Infinity;
    for (let j = 0; j < C; j++) max = Math.max(max, logits[base + j]!);
    let total = 0;
    for (let j = 0; j < C; j++) {
      const e = Math.exp(logits[base + j]! - max);
      delta[base + j] = e;
      total += e;
    }
    const label = labels[order[start + r]!]!;
    loss += Math.log(total) + max - logits[base + label]!;
    for (let j = 0; j < C; j++) delta[base + j] = (delta[base + j]! / total - (j === label ? 1 : 0)) / B;
  }
  return loss;
}

/** Accumulates every layer's weight and bias gradients from deltas[last], walking back through the ReLUs. */
function backward(layers: LayerState[], activations: Float64Array[], deltas: Float64Array[], B: number): void {
  for (let l = layers.length - 1; l >= 0; l--) {
    const { inSize, outSize, weights, gradWeights, gradBias } = layers[l]!;
    const h = activations[l]!;
    const dz = deltas[l + 1]!;
    gradWeights.fill(0);
    gradBias.fill(0);
    for (let r = 0; r < B; r++) {
      const dRow = r * outSize;
      for (let j = 0; j < outSize; j++) gradBias[j] = gradBias[j]! + dz[dRow + j]!;
      for (let i = 0; i < inSize; i++) {
        const hi = h[r * inSize + i]!;
        if (hi === 0) continue;
        const wRow = i * outSize;
        for (let j = 0; j < outSize; j++) gradWeights[wRow + j] = gradWeights[wRow + j]! + hi * dz[dRow + j]!;
      }
    }
    if (l === 0) break;
    // The previous layer is a ReLU: its output h is > 0 exactly where its derivative is 1.
    const dh = deltas[l]!;
    for (let r = 0; r < B; r++) {
      const dRow = r * outSize;
      for (let i = 0; i < inSize; i++) {
        if (h[r * inSize + i]! <= 0) {
          dh[r * inSize + i] = 0;
          continue;
        }
        const wRow = i * outSize;
        let sum = 0;
        for (let j = 0; j < outSize; j++) sum += dz[dRow + j]! * weights[wRow + j]!;
        dh[r * inSize + i] = sum;
      }
    }
  }
}
