/**
 * The MLP trainer, its dataset helpers and metrics, on small seeded synthetic data (not the
 * vibration simulator, so these tests say nothing about that model's accuracy): convergence on
 * a non-linear set, bit-identical models for a seed, early stopping that restores the best
 * epoch, normalization from the training split only, the trained model in onnxruntime, refused
 * inputs, and metrics against hand-computed values.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createWorkerRuntime } from '@cairn/agent/components/runtime/worker-runtime.js';
import { datasetDigest, gatherLabels, gatherRows, splitForSeed, stratifiedSplit, type LabelledDataset } from '@cairn/hub/training/dataset-split.js';
import { accuracy, argmax, confusionMatrix, crossEntropy, evaluate, macroF1, perClassMetrics } from '@cairn/hub/training/metrics.js';
import { mlpForward, writeMlpOnnx, type MlpSpec } from '@cairn/hub/training/onnx-writer.js';
import { STD_FLOOR, trainMlp, type TrainOptions, type TrainResult } from '@cairn/hub/training/trainer.js';
import { gaussian, mulberry32, sha256Hex } from '@cairn/shared';

const RING_FEATURES = 4;

/**
 * Three concentric rings (radii 1, 2, 3, radial noise σ 0.15) — no line separates the middle
 * ring — plus two pure-noise features. The ring coordinates are put on very different scales
 * and offsets (x ≈ 1000 ± 150, y ≈ ±0.03) so that training only works through normalization.
 */
function rings(count: number, seed: number): LabelledDataset {
  const rng = mulberry32(seed);
  const features = new Float32Array(count * RING_FEATURES);
  const labels = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    const label = r % 3;
    const radius = 1 + label + 0.15 * gaussian(rng);
    const angle = 2 * Math.PI * rng();
    labels[r] = label;
    features.set([1000 + 50 * radius * Math.cos(angle), 0.01 * radius * Math.sin(angle), gaussian(rng), 5 + 3 * gaussian(rng)], r * RING_FEATURES);
  }
  return { features, labels, count, featureCount: RING_FEATURES, classCount: 3 };
}

/** Three heavily overlapping Gaussian blobs: a big network can only memorize them. */
function overlappingBlobs(count: number, seed: number): LabelledDataset {
  const rng = mulberry32(seed);
  const featureCount = 2;
  const features = new Float32Array(count * featureCount);
  const labels = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    labels[r] = r % 3;
    features[r * 2] = 0.5 * (r % 3) + gaussian(rng);
    features[r * 2 + 1] = gaussian(rng);
  }
  return { features, labels, count, featureCount, classCount: 3 };
}

const RING_OPTIONS: TrainOptions = { hidden: [32, 16], seed: 7, epochs: 120, batchSize: 32, learningRate: 0.01, patience: 30 };

let ringModel: { data: LabelledDataset; result: TrainResult } | undefined;
/** Trained once and shared by the tests that only read it. */
function trainedRings(): { data: LabelledDataset; result: TrainResult } {
  if (!ringModel) {
    const data = rings(900, 1);
    ringModel = { data, result: trainMlp(data, RING_OPTIONS) };
  }
  return ringModel;
}

function validationOf(data: LabelledDataset, result: TrainResult): { x: Float32Array; y: Int32Array } {
  return { x: gatherRows(data.features, data.featureCount, result.split.validation), y: gatherLabels(data.labels, result.split.validation) };
}

test('converges on three concentric rings to ≥ 97 % validation accuracy; a linear model cannot', () => {
  const { data, result } = trainedRings();
  const { x, y } = validationOf(data, result);
  assert.equal(result.split.validation.length, 180);
  // Observed: 100 % validation and training accuracy (best epoch well before the limit).
  assert.ok(result.metrics.validationAccuracy >= 0.97, `validation accuracy ${result.metrics.validationAccuracy}`);
  assert.ok(result.metrics.trainAccuracy >= 0.97, `training accuracy ${result.metrics.trainAccuracy}`);
  assert.equal(evaluate(result.spec, x, y).accuracy, result.metrics.validationAccuracy);
  const first = result.history[0]!;
  const best = result.history[result.bestEpoch - 1]!;
  assert.ok(best.valLoss < first.valLoss / 5, `validation loss fell from ${first.valLoss} to ${best.valLoss}`);
  assert.deepEqual(result.spec.normalization, result.normalization);
  assert.equal(result.spec.softmax, true);
  assert.deepEqual(result.spec.layers.map((l) => [l.inSize, l.outSize, l.activation]), [[4, 32, 'relu'], [32, 16, 'relu'], [16, 3, 'none']]);

  // The same split and recipe without hidden layers: the middle ring is out of reach of a line.
  const linear = trainMlp(data, { ...RING_OPTIONS, hidden: [] });
  assert.deepEqual(linear.split, result.split);
  assert.ok(linear.metrics.validationAccuracy < 0.75, `a softmax regression reached ${linear.metrics.validationAccuracy}`);
});

test('the same data and options give bit-identical ONNX bytes; another seed gives others', () => {
  const data = rings(300, 2);
  const options: TrainOptions = { ...RING_OPTIONS, epochs: 40, metadata: { 'cairn.recipe': 'rings-test' } };
  const a = trainMlp(data, options);
  const b = trainMlp(data, options);
  const c = trainMlp(data, { ...options, seed: 8 });
  const bytesA = writeMlpOnnx(a.spec);
  assert.deepEqual(writeMlpOnnx(b.spec), bytesA);
  assert.equal(sha256Hex(writeMlpOnnx(b.spec)), sha256Hex(bytesA));
  assert.deepEqual(b.history, a.history);
  assert.equal(a.bestEpoch, b.bestEpoch);
  assert.notDeepEqual(writeMlpOnnx(c.spec), bytesA);
  assert.notDeepEqual(c.split, a.split);
  assert.equal(a.spec.metadata?.['cairn.recipe'], 'rings-test');
  // The split is the first thing drawn from the seed, so the architecture does not move it.
  assert.deepEqual(trainMlp(data, { ...options, hidden: [8], epochs: 1 }).split, a.split);
  assert.deepEqual(a.split, splitForSeed(data.labels, 3, 0.2, options.seed));
});

test('early stopping on an overfitting net restores the best epoch, whose validation loss the returned model reproduces exactly', () => {
  const data = overlappingBlobs(60, 3);
  const patience = 15;
  const epochs = 1000;
  const seen: number[] = [];
  const result = trainMlp(data, { hidden: [64, 64], seed: 4, epochs, batchSize: 8, learningRate: 0.01, patience, onEpoch: (e) => seen.push(e.epoch) });
  const { history, bestEpoch } = result;

  assert.equal(result.stoppedEarly, true);
  assert.ok(history.length < epochs);
  assert.equal(history.length, bestEpoch + patience, 'stopped exactly `patience` epochs after the best');
  assert.deepEqual(seen, history.map((h) => h.epoch));
  const losses = history.map((h) => h.valLoss);
  assert.equal(Math.min(...losses), losses[bestEpoch - 1]);
  assert.ok(losses.slice(bestEpoch).every((l) => l >= losses[bestEpoch - 1]!), 'no later epoch was better');
  // It was overfitting: the training loss kept falling while the validation loss did not.
  assert.ok(history[history.length - 1]!.trainLoss < history[bestEpoch - 1]!.trainLoss);

  // The returned weights are the best epoch's, not the last one's: scoring the spec on the
  // validation rows gives the recorded best loss to the last bit.
  const { x, y } = validationOf(data, result);
  const probabilities = mlpForward(result.spec, x, y.length);
  assert.equal(crossEntropy(probabilities, y, 3), history[bestEpoch - 1]!.valLoss);
  assert.equal(evaluate(result.spec, x, y).loss, result.metrics.validationLoss);
  assert.equal(accuracy(argmax(probabilities, y.length, 3), y), result.metrics.validationAccuracy);
  assert.notEqual(crossEntropy(probabilities, y, 3), history[history.length - 1]!.valLoss);
});

test('normalization comes from the training split only: an outlier in validation leaves it and the training unchanged', () => {
  const clean = rings(300, 5);
  const options: TrainOptions = { ...RING_OPTIONS, seed: 11, epochs: 15, patience: 100 };
  const split = splitForSeed(clean.labels, 3, 0.2, options.seed);
  const validationRow = split.validation[0]!;
  const trainingRow = split.train[0]!;
  const withOutlier = (row: number): LabelledDataset => {
    const features = clean.features.slice();
    features[row * RING_FEATURES] = 1e6;
    return { ...clean, features };
  };

  const baseline = trainMlp(clean, options);
  const outlierInValidation = trainMlp(withOutlier(validationRow), options);
  assert.deepEqual(outlierInValidation.split, split);
  assert.deepEqual(outlierInValidation.normalization, baseline.normalization);
  // Validation rows never touch the weights: every epoch's training loss is the same.
  assert.deepEqual(outlierInValidation.history.map((h) => h.trainLoss), baseline.history.map((h) => h.trainLoss));
  assert.notDeepEqual(outlierInValidation.history.map((h) => h.valLoss), baseline.history.map((h) => h.valLoss));

  // The statistics are the training rows' mean and population std.
  for (let c = 0; c < RING_FEATURES; c++) {
    const values = Array.from(split.train, (row) => clean.features[row * RING_FEATURES + c]!);
    const mean = values.reduce((s, v) => s + v, 0) / values.length;
    const std = Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / values.length);
    assert.ok(Math.abs(baseline.normalization.mean[c]! - mean) <= 1e-6 * Math.max(1, Math.abs(mean)), `mean[${c}]`);
    assert.ok(Math.abs(baseline.normalization.std[c]! - std) <= 1e-6 * Math.max(1, std), `std[${c}]`);
  }
  // Control: the same outlier in a training row does move the mean.
  assert.notDeepEqual(trainMlp(withOutlier(trainingRow), options).normalization.mean, baseline.normalization.mean);
});

test('l2 shrinks the weights', () => {
  const data = rings(300, 12);
  const options: TrainOptions = { ...RING_OPTIONS, epochs: 30, patience: 100 };
  const squaredNorm = (result: TrainResult): number => result.spec.layers.reduce((sum, l) => sum + l.weights.reduce((s, w) => s + w * w, 0), 0);
  const plain = trainMlp(data, options);
  const decayed = trainMlp(data, { ...options, l2: 0.05 });
  assert.ok(squaredNorm(decayed) < 0.8 * squaredNorm(plain), `‖W‖² ${squaredNorm(decayed)} vs ${squaredNorm(plain)}`);
  assert.notDeepEqual(writeMlpOnnx(decayed.spec), writeMlpOnnx(plain.spec));
});

test('a constant feature gets the std floor and stays finite', () => {
  const data = rings(150, 6);
  const features = data.features.slice();
  for (let r = 0; r < data.count; r++) features[r * RING_FEATURES + 2] = 42;
  const result = trainMlp({ ...data, features }, { ...RING_OPTIONS, epochs: 5 });
  assert.equal(result.normalization.std[2], Math.fround(STD_FLOOR));
  assert.equal(result.normalization.mean[2], 42);
  assert.ok(result.history.every((h) => Number.isFinite(h.valLoss)));
});

test('the trained model written to ONNX runs in onnxruntime (worker runtime) with outputs equal to mlpForward within 1e-5', async (t: TestContext) => {
  const { data, result } = trainedRings();
  const bytes = writeMlpOnnx(result.spec);
  const dir = await mkdtemp(join(tmpdir(), 'cairn-trainer-'));
  const runtime = createWorkerRuntime();
  t.after(() => rm(dir, { recursive: true, force: true }));
  t.after(() => runtime.close());
  const path = join(dir, 'rings.onnx');
  await writeFile(path, bytes);
  const session = await runtime.load(sha256Hex(bytes), path);
  assert.deepEqual(session.inputs.map((i) => i.name), ['features']);
  assert.deepEqual(session.outputs.map((o) => o.name), ['probabilities']);

  // Raw, unnormalized rows: the graph scales them itself.
  const { outputs: out } = await session.infer({ features: { dims: [data.count, RING_FEATURES], data: data.features } });
  const probabilities = out['probabilities'];
  assert.ok(probabilities);
  assert.deepEqual(probabilities.dims, [data.count, 3]);
  const expected = mlpForward(result.spec, data.features, data.count);
  let maxDiff = 0;
  probabilities.data.forEach((p, i) => (maxDiff = Math.max(maxDiff, Math.abs(p - expected[i]!))));
  assert.ok(maxDiff <= 1e-5, `max |onnxruntime - mlpForward| = ${maxDiff}`);
  assert.deepEqual(argmax(probabilities.data, data.count, 3), argmax(expected, data.count, 3));
});

test('invalid data and options are refused with the reason', () => {
  const data = rings(30, 9);
  const options: TrainOptions = { ...RING_OPTIONS, epochs: 1 };
  const badLabel = data.labels.slice();
  badLabel[4] = 3;
  assert.throws(() => trainMlp({ ...data, labels: badLabel }, options), /invalid training data: label of row 4 is 3, outside \[0, 3\)/);
  badLabel[4] = -1;
  assert.throws(() => trainMlp({ ...data, labels: badLabel }, options), /label of row 4 is -1/);
  const nan = data.features.slice();
  nan[2 * RING_FEATURES + 1] = Number.NaN;
  assert.throws(() => trainMlp({ ...data, features: nan }, options), /invalid training data: feature 1 of row 2 is NaN/);
  const inf = data.features.slice();
  inf[0] = Infinity;
  assert.throws(() => trainMlp({ ...data, features: inf }, options), /feature 0 of row 0 is Infinity/);
  assert.throws(() => trainMlp({ ...data, count: 31 }, options), /features has 120 values, expected count×featureCount = 31×4 = 124/);
  assert.throws(() => trainMlp({ ...data, labels: data.labels.subarray(1) }, options), /labels has 29 values, expected count = 30/);
  assert.throws(() => trainMlp({ ...data, featureCount: 0 }, options), /featureCount must be a positive integer/);
  assert.throws(() => trainMlp({ ...data, classCount: 1 }, options), /classCount must be an integer ≥ 2/);
  for (const validationFraction of [0, 1, -0.2, 1.5, Number.NaN]) {
    assert.throws(() => trainMlp(data, { ...options, validationFraction }), /invalid training options: validationFraction must be in \(0, 1\)/);
  }
  assert.throws(() => trainMlp(data, { ...options, hidden: [8, 0] }), /hidden\[1\] must be a positive integer, got 0/);
  assert.throws(() => trainMlp(data, { ...options, learningRate: 0 }), /learningRate must be a finite number > 0/);
  assert.throws(() => trainMlp(data, { ...options, batchSize: 2.5 }), /batchSize must be a positive integer/);
  assert.throws(() => trainMlp(data, { ...options, epochs: 0 }), /epochs must be a positive integer/);
  assert.throws(() => trainMlp(data, { ...options, patience: 0 }), /patience must be a positive integer/);
  assert.throws(() => trainMlp(data, { ...options, l2: -1 }), /l2 must be a finite number ≥ 0/);
  assert.throws(() => trainMlp(data, { ...options, seed: 1.5 }), /seed must be an integer/);
  assert.throws(() => trainMlp(data, { ...options, inputName: 'x', outputName: 'x' }), /inputName and outputName must differ/);
  assert.throws(() => trainMlp({ ...data, count: 3, features: data.features.subarray(0, 12), labels: data.labels.subarray(0, 3) }, { ...options, validationFraction: 0.1 }), /validation split is empty/);
  assert.throws(() => trainMlp(data, { ...options, epochs: 50, batchSize: 4, patience: 100, learningRate: 1e38 }), /training diverged in epoch \d+: (the loss is (NaN|Infinity)|a weight is no longer finite); lower learningRate/);
});

test('the stratified split keeps class proportions, covers every row once and depends only on the labels and seed', () => {
  const labels = Int32Array.from({ length: 101 }, (_, i) => (i < 50 ? 0 : i < 80 ? 1 : i < 100 ? 2 : 3));
  const split = splitForSeed(labels, 4, 0.2, 1);
  const count = (rows: Int32Array, c: number): number => rows.filter((r) => labels[r] === c).length;
  assert.deepEqual([0, 1, 2, 3].map((c) => count(split.validation, c)), [10, 6, 4, 0], 'the lone class-3 row stays in training');
  assert.deepEqual([0, 1, 2, 3].map((c) => count(split.train, c)), [40, 24, 16, 1]);
  assert.deepEqual([...split.train, ...split.validation].sort((a, b) => a - b), Array.from({ length: 101 }, (_, i) => i));
  assert.deepEqual([...split.validation], [...split.validation].sort((a, b) => a - b));
  assert.deepEqual(splitForSeed(labels, 4, 0.2, 1), split);
  assert.deepEqual(stratifiedSplit(labels, 4, 0.2, mulberry32(1)), split);
  assert.notDeepEqual(splitForSeed(labels, 4, 0.2, 2).validation, split.validation);
});

test('datasetDigest hashes the shape, float32 and int32 little-endian bytes', () => {
  const features = Float32Array.from([1, -2]);
  const labels = Int32Array.from([0, 3]);
  const expected = createHash('sha256')
    .update(Buffer.from('02000000' + '01000000' + '0000803f' + '000000c0' + '00000000' + '03000000', 'hex'))
    .digest('hex');
  assert.equal(datasetDigest(features, labels), expected);
  assert.notEqual(datasetDigest(features, Int32Array.from([0, 2])), expected);
  // The same 24 bytes of values read as 2 rows × 2 features or 3 rows × 1 feature (float 0 and
  // int 0 share their bytes): the shape header tells them apart.
  assert.notEqual(datasetDigest(Float32Array.from([1, 2, 3, 0]), Int32Array.from([1, 2])), datasetDigest(Float32Array.from([1, 2, 3]), Int32Array.from([0, 1, 2])));
  assert.throws(() => datasetDigest(Float32Array.from([1, 2, 3]), Int32Array.from([0, 1])), /not a multiple/);
});

test('metrics on a hand-computed confusion matrix', () => {
  const labels = Int32Array.from([0, 0, 0, 1, 1, 2, 2, 2, 2, 0]);
  const predicted = Int32Array.from([0, 1, 0, 1, 2, 2, 2, 0, -1, 0]);
  assert.equal(accuracy(predicted, labels), 0.6);
  const confusion = confusionMatrix(predicted, labels, 3);
  // Row = true class, column = predicted; the unpredicted (-1) row is in no column.
  assert.deepEqual(confusion, [
    [3, 1, 0],
    [0, 1, 1],
    [1, 0, 2],
  ]);
  const perClass = perClassMetrics(confusion, labels);
  assert.deepEqual(perClass.map((c) => c.support), [4, 2, 4]);
  const near = (actual: number, expected: number): void => assert.ok(Math.abs(actual - expected) < 1e-12, `${actual} vs ${expected}`);
  near(perClass[0]!.precision, 3 / 4);
  near(perClass[1]!.precision, 1 / 2);
  near(perClass[2]!.precision, 2 / 3);
  near(perClass[0]!.recall, 3 / 4);
  near(perClass[1]!.recall, 1 / 2);
  near(perClass[2]!.recall, 2 / 4);
  near(perClass[0]!.f1, 3 / 4);
  near(perClass[1]!.f1, 1 / 2);
  near(perClass[2]!.f1, 4 / 7);
  near(macroF1(perClass), (3 / 4 + 1 / 2 + 4 / 7) / 3);

  const never = perClassMetrics(confusionMatrix(Int32Array.from([0, 0]), Int32Array.from([0, 1]), 3), Int32Array.from([0, 1]));
  assert.deepEqual(never[1], { precision: 0, recall: 0, f1: 0, support: 1 });
  assert.deepEqual(never[2], { precision: 0, recall: 0, f1: 0, support: 0 });

  assert.deepEqual(argmax(Float32Array.from([0.1, 0.7, 0.2, 0.5, 0.5, 0, Number.NaN, 1, 0, -1, -2, -0.5]), 4, 3), Int32Array.from([1, 0, -1, 2]));
  const probabilities = Float32Array.from([0.5, 0.25, 0.25, 0.1, 0.8, 0.1, 0, 1, 0]);
  near(crossEntropy(probabilities, Int32Array.from([0, 1, 0]), 3), (Math.log(2) - Math.log(Math.fround(0.8)) - Math.log(1e-12)) / 3);
  assert.throws(() => confusionMatrix(Int32Array.from([3]), Int32Array.from([0]), 3), /prediction 0 is 3/);
  assert.throws(() => accuracy(Int32Array.from([0]), Int32Array.from([0, 1])), /1 predictions for 2 labels/);
});

test('evaluate runs the network and scores it, applying softmax itself when the spec has none', () => {
  // logits = [x0, x1, 0]
  const spec: MlpSpec = {
    inputName: 'x',
    outputName: 'y',
    inputSize: 2,
    layers: [{ inSize: 2, outSize: 3, weights: Float32Array.from([1, 0, 0, 0, 1, 0]), bias: new Float32Array(3), activation: 'none' }],
    softmax: true,
  };
  const features = Float32Array.from([2, 0, 0, 2, -1, -1]);
  const labels = Int32Array.from([0, 1, 1]);
  const result = evaluate(spec, features, labels);
  assert.equal(result.count, 3);
  assert.deepEqual(result.predictions, Int32Array.from([0, 1, 2]));
  assert.equal(result.accuracy, 2 / 3);
  assert.deepEqual(result.confusion, [
    [1, 0, 0],
    [0, 1, 1],
    [0, 0, 0],
  ]);
  const e2 = Math.exp(2);
  const expectedLoss = (2 * -Math.log(e2 / (e2 + 2)) - Math.log(Math.exp(-1) / (2 * Math.exp(-1) + 1))) / 3;
  assert.ok(Math.abs(result.loss - expectedLoss) < 1e-6, `${result.loss} vs ${expectedLoss}`);
  const logits = evaluate({ ...spec, softmax: false }, features, labels);
  assert.deepEqual(logits.predictions, result.predictions);
  assert.ok(Math.abs(logits.loss - expectedLoss) < 1e-6);
  assert.throws(() => evaluate(spec, features.subarray(1), labels), /features has 5 values, expected 3×2/);
});
