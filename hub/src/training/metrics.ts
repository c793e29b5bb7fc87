/**
 * Classification metrics for the trainer, the quantizer's accuracy gate and evaluation reports.
 *
 * Conventions (the gate compares numbers produced here, so they are fixed):
 * - Predictions are class indices; `-1` means "no prediction" (`argmax` of a row that holds a
 *   NaN). It counts as wrong everywhere and appears in no confusion-matrix column, so a model
 *   that emits NaN scores 0, not "class 0".
 * - `confusion[t][p]` counts rows whose true class is t and predicted class is p.
 * - A class never predicted has precision 0; a class absent from the labels has recall 0; F1 is
 *   0 when precision + recall is 0 (scikit-learn's `zero_division=0`).
 * - Cross-entropy is the mean of `-ln(max(p_true, PROBABILITY_FLOOR))`, so a confident wrong
 *   answer costs a large but finite loss.
 */
import { argmax } from '@cairn/shared';
import { mlpForward, type MlpSpec } from './onnx-writer.js';

/** Lower bound on a probability inside the log: ln(1e-12) ≈ -27.6. */
export const PROBABILITY_FLOOR = 1e-12;

export interface ClassMetrics {
  precision: number;
  recall: number;
  f1: number;
  /** Rows whose true class is this one. */
  support: number;
}

export interface Evaluation {
  count: number;
  accuracy: number;
  /** Mean cross-entropy of the model's probabilities (softmax applied here when the spec has none). */
  loss: number;
  confusion: number[][];
  perClass: ClassMetrics[];
  /** Unweighted mean of the per-class F1 scores. */
  macroF1: number;
  predictions: Int32Array;
}

/** The agent's drift monitor counts predicted classes the same way, so the definition lives in @cairn/shared. */
export { argmax };

/** Fraction of rows predicted correctly; 0 for no rows. */
export function accuracy(predicted: Int32Array, labels: Int32Array): number {
  checkSameLength(predicted, labels);
  if (labels.length === 0) return 0;
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) correct++;
  return correct / labels.length;
}

/** `matrix[true][predicted]`; predictions of -1 are left out (see the header). */
export function confusionMatrix(predicted: Int32Array, labels: Int32Array, classCount: number): number[][] {
  checkSameLength(predicted, labels);
  if (!Number.isInteger(classCount) || classCount < 1) throw new RangeError(`classCount must be a positive integer, got ${classCount}`);
  const matrix = Array.from({ length: classCount }, () => new Array<number>(classCount).fill(0));
  for (let i = 0; i < labels.length; i++) {
    const t = labels[i]!;
    const p = predicted[i]!;
    if (t < 0 || t >= classCount) throw new RangeError(`label ${i} is ${t}, outside [0, ${classCount})`);
    if (p === -1) continue;
    if (p < 0 || p >= classCount) throw new RangeError(`prediction ${i} is ${p}, outside [0, ${classCount})`);
    matrix[t]![p]!++;
  }
  return matrix;
}

/** Precision, recall, F1 and support per class, from a confusion matrix and the true class counts. */
export function perClassMetrics(confusion: number[][], labels: Int32Array): ClassMetrics[] {
  const classCount = confusion.length;
  const support = new Array<number>(classCount).fill(0);
  for (const t of labels) if (t >= 0 && t < classCount) support[t]!++;
  return confusion.map((row, c) => {
    const tp = row[c]!;
    let predictedAsC = 0;
    for (const other of confusion) predictedAsC += other[c]!;
    const precision = predictedAsC === 0 ? 0 : tp / predictedAsC;
    const recall = support[c] === 0 ? 0 : tp / support[c]!;
    const f1 = precision + recall === 0 ? 0 : (2 * precision * recall) / (precision + recall);
    return { precision, recall, f1, support: support[c]! };
  });
}

export function macroF1(perClass: ClassMetrics[]): number {
  return perClass.length === 0 ? 0 : perClass.reduce((sum, c) => sum + c.f1, 0) / perClass.length;
}

/** Mean `-ln(max(p[label], PROBABILITY_FLOOR))` over rows of a `[rows, classCount]` probability matrix. */
export function crossEntropy(probabilities: Float32Array, labels: Int32Array, classCount: number): number {
  if (probabilities.length !== labels.length * classCount) throw new RangeError(`probabilities has ${probabilities.length} entries, expected ${labels.length}×${classCount}`);
  if (labels.length === 0) return 0;
  let total = 0;
  for (let r = 0; r < labels.length; r++) {
    const label = labels[r]!;
    if (label < 0 || label >= classCount) throw new RangeError(`label ${r} is ${label}, outside [0, ${classCount})`);
    const p = probabilities[r * classCount + label]!;
    // Math.max propagates NaN, so a model that emits NaN has a NaN loss, not a floored one.
    total -= Math.log(Math.max(p, PROBABILITY_FLOOR));
  }
  return total / labels.length;
}

/** Runs the network (`mlpForward`) on `features` `[labels.length, inputSize]` and scores it. */
export function evaluate(spec: MlpSpec, features: Float32Array, labels: Int32Array): Evaluation {
  const count = labels.length;
  const classCount = spec.layers[spec.layers.length - 1]?.outSize ?? 0;
  if (features.length !== count * spec.inputSize) throw new RangeError(`features has ${features.length} values, expected ${count}×${spec.inputSize} (one row per label)`);
  const outputs = mlpForward(spec, features, count);
  const probabilities = spec.softmax ? outputs : softmaxRows(outputs, count, classCount);
  const predictions = argmax(outputs, count, classCount);
  const confusion = confusionMatrix(predictions, labels, classCount);
  const perClass = perClassMetrics(confusion, labels);
  return {
    count,
    accuracy: accuracy(predictions, labels),
    loss: crossEntropy(probabilities, labels, classCount),
    confusion,
    perClass,
    macroF1: macroF1(perClass),
    predictions,
  };
}

function softmaxRows(logits: Float32Array, rows: number, width: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let r = 0; r < rows; r++) {
    let max = -Infinity;
    for (let j = 0; j < width; j++) max = Math.max(max, logits[r * width + j]!);
    let total = 0;
    for (let j = 0; j < width; j++) total += Math.exp(logits[r * width + j]! - max);
    for (let j = 0; j < width; j++) out[r * width + j] = Math.exp(logits[r * width + j]! - max) / total;
  }
  return out;
}

function checkSameLength(predicted: Int32Array, labels: Int32Array): void {
  if (predicted.length !== labels.length) throw new RangeError(`${predicted.length} predictions for ${labels.length} labels`);
}
