/**
 * The labelled dataset the trainer consumes: its shape checks, its digest (lineage) and the
 * seeded, stratified train/validation split.
 *
 * A dataset is `features` row-major `[count, featureCount]` float32 and `labels` int32 class
 * indices in `[0, classCount)`. Every function here is a pure function of its arguments, so a
 * split or a digest recomputed later (for a manifest, a drift reference, a rebuild check) is
 * the one the model was trained on.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { mulberry32, type Rng } from '@cairn/shared';

export interface LabelledDataset {
  features: Float32Array;
  labels: Int32Array;
  count: number;
  featureCount: number;
  classCount: number;
}

export interface DatasetSplit {
  /** Row indices of the training split, ascending. */
  train: Int32Array;
  /** Row indices of the validation split, ascending. */
  validation: Int32Array;
}

/**
 * Throws a RangeError naming the first problem: counts that disagree with the arrays, a
 * non-finite feature (with its row and column) or a label outside `[0, classCount)`.
 * Everything downstream (normalization, gradients, ONNX initializers) assumes these hold.
 */
export function validateDataset(data: LabelledDataset): void {
  const fail = (message: string): never => {
    throw new RangeError(`invalid training data: ${message}`);
  };
  const { features, labels, count, featureCount, classCount } = data;
  if (!(features instanceof Float32Array)) fail('features must be a Float32Array');
  if (!(labels instanceof Int32Array)) fail('labels must be an Int32Array');
  if (!Number.isInteger(count) || count < 1) fail(`count must be a positive integer, got ${count}`);
  if (!Number.isInteger(featureCount) || featureCount < 1) fail(`featureCount must be a positive integer, got ${featureCount}`);
  if (!Number.isInteger(classCount) || classCount < 2) fail(`classCount must be an integer ≥ 2, got ${classCount}`);
  if (features.length !== count * featureCount) fail(`features has ${features.length} values, expected count×featureCount = ${count}×${featureCount} = ${count * featureCount}`);
  if (labels.length !== count) fail(`labels has ${labels.length} values, expected count = ${count}`);
  for (let i = 0; i < features.length; i++) {
    if (!Number.isFinite(features[i]!)) fail(`feature ${i % featureCount} of row ${Math.floor(i / featureCount)} is ${features[i]}`);
  }
  for (let r = 0; r < count; r++) {
    const label = labels[r]!;
    if (label < 0 || label >= classCount) fail(`label of row ${r} is ${label}, outside [0, ${classCount})`);
  }
}

/**
 * Splits rows into training and validation, class by class, so both splits keep the class
 * proportions: each class's rows are shuffled (Fisher–Yates with `rng`) and
 * `round(classRows × validationFraction)` of them go to validation, but never all of them (a
 * class needs a training row to be learned). Throws when either split comes out empty.
 *
 * Consumes the generator in a fixed pattern (class by class, in class order), so a seed names
 * one split of one label array.
 */
export function stratifiedSplit(labels: Int32Array, classCount: number, validationFraction: number, rng: Rng): DatasetSplit {
  if (!(validationFraction > 0 && validationFraction < 1)) throw new RangeError(`validationFraction must be in (0, 1), got ${validationFraction}`);
  const byClass: number[][] = Array.from({ length: classCount }, () => []);
  labels.forEach((label, row) => {
    const rows = byClass[label];
    if (!rows) throw new RangeError(`label of row ${row} is ${label}, outside [0, ${classCount})`);
    rows.push(row);
  });
  const train: number[] = [];
  const validation: number[] = [];
  for (const rows of byClass) {
    for (let i = rows.length - 1; i > 0; i--) {
      const j = Math.floor(rng() * (i + 1));
      const tmp = rows[i]!;
      rows[i] = rows[j]!;
      rows[j] = tmp;
    }
    const nValidation = Math.min(Math.round(rows.length * validationFraction), rows.length - 1);
    for (let i = 0; i < rows.length; i++) (i < nValidation ? validation : train).push(rows[i]!);
  }
  if (validation.length === 0) throw new RangeError(`the validation split is empty: ${labels.length} rows × validationFraction ${validationFraction} leaves no class a validation row`);
  if (train.length === 0) throw new RangeError('the training split is empty');
  const ascending = (a: number, b: number): number => a - b;
  return { train: Int32Array.from(train.sort(ascending)), validation: Int32Array.from(validation.sort(ascending)) };
}

/** The split `trainMlp` uses for `seed`: the first values of `mulberry32(seed)` shuffle it. */
export function splitForSeed(labels: Int32Array, classCount: number, validationFraction: number, seed: number): DatasetSplit {
  return stratifiedSplit(labels, classCount, validationFraction, mulberry32(seed));
}

/** Copies the given rows of a row-major `[*, width]` matrix into a new contiguous matrix. */
export function gatherRows(matrix: Float32Array, width: number, rows: Int32Array): Float32Array {
  const out = new Float32Array(rows.length * width);
  rows.forEach((row, i) => out.set(matrix.subarray(row * width, (row + 1) * width), i * width));
  return out;
}

/** Picks the given entries of a label array. */
export function gatherLabels(labels: Int32Array, rows: Int32Array): Int32Array {
  return rows.map((row) => labels[row]!);
}

/**
 * Lineage digest of a dataset: lowercase hex SHA-256 of
 * `u32le(count) ‖ u32le(featureCount) ‖ features as float32 LE ‖ labels as int32 LE`, where
 * `count = labels.length` and `featureCount = features.length / count`.
 * The two counts are hashed because the raw bytes alone do not fix the shape: 2 rows of 2
 * features and 3 rows of 1 feature are both 12 values. Little-endian whatever the host, so the
 * digest names the data, not the machine that hashed it.
 */
export function datasetDigest(features: Float32Array, labels: Int32Array): string {
  const count = labels.length;
  if (count === 0) throw new RangeError('cannot digest an empty dataset');
  if (features.length % count !== 0) throw new RangeError(`features has ${features.length} values, not a multiple of the ${count} labels`);
  const header = new Uint8Array(8);
  const view = new DataView(header.buffer);
  view.setUint32(0, count, true);
  view.setUint32(4, features.length / count, true);
  const hash = createHash('sha256').update(header);
  hash.update(littleEndianBytes(features));
  hash.update(littleEndianBytes(labels));
  return hash.digest('hex');
}

function littleEndianBytes(values: Float32Array | Int32Array): Uint8Array {
  if (endianness() === 'LE') return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  const out = new Uint8Array(values.byteLength);
  const view = new DataView(out.buffer);
  values.forEach((v, i) => (values instanceof Float32Array ? view.setFloat32(i * 4, v, true) : view.setInt32(i * 4, v, true)));
  return out;
}
