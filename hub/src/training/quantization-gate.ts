/**
 * The accuracy gate between an fp32 parent and its quantized child: both run in onnxruntime on
 * the same calibration set, in the same process and the same run, and the child is refused when
 * it strays further from the parent than the tolerance allows.
 *
 * Contract of `evaluateQuantization`:
 * - Both models are written to a temporary directory and loaded through the agent's worker
 *   runtime (`createWorkerRuntime`): the same onnxruntime, session options (optimization level
 *   `all`, so the int8 weights are fused as on a device) and thread isolation as the agent.
 * - The calibration set must match the parent's signature: one float32 input `[batch, width]`
 *   with the given name (when given) and width = inputs.length / count; the child must have the
 *   same input and the parent's first output. Every mismatch is listed at once in a
 *   `QuantizationError` (`CAIRN_QUANT_CALIBRATION_MISMATCH`), as are bad labels.
 * - Labelled: accuracy of the argmax of each model's first output, in points (0–100), and the
 *   drop parent − child, checked against `maxAccuracyDropPoints` (default 0.5). Unlabelled:
 *   the share of rows whose argmax agrees, checked against `minAgreement` (default 0.99; also
 *   checked when labelled if given explicitly). Always: max and mean absolute difference of the
 *   outputs (checked when `maxAbsError` is given), argmax agreement, file sizes and their ratio.
 * - Latency: `latencyRuns` single-row inferences per model (default 200, after a warm-up),
 *   interleaved in batches of 10 with the order alternating, so both models see the same machine
 *   state; the median per model and the ratio child / parent. It is measured as the agent serves
 *   a model, worker round trip included, which pulls the ratio of tiny models toward 1. It is
 *   reported, and checked only when `maxLatencyRatio` is given (timing is noisy).
 * - A child output that is NaN or infinite where the parent's is finite is always a failure.
 * - `failures` names each exceeded tolerance with the measured value; `passed` is true when
 *   there is none. The runtime and the temporary files are gone when the promise settles.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256Hex, type TensorSpecT } from '@cairn/shared';
import type { ModelSession } from '@cairn/agent/components/runtime/types.js';
import { createWorkerRuntime, ModelRuntimeError } from '@cairn/agent/components/runtime/worker-runtime.js';
import { QuantizationError } from './quantizer.js';

export interface CalibrationSet {
  /** Row-major `[count, inputSize]`. */
  inputs: Float32Array;
  /** The model input to feed; defaults to the model's only input. */
  inputName?: string;
  count: number;
  /** One class index per row; without labels the gate compares the two models with each other. */
  labels?: Int32Array;
}

export interface GateTolerance {
  /** Largest accepted accuracy drop in points (labelled calibration); default 0.5. */
  maxAccuracyDropPoints?: number;
  /** Smallest accepted share (0–1) of rows where both argmaxes agree; default 0.99 when unlabelled. */
  minAgreement?: number;
  /** Largest accepted absolute difference of any output value; unchecked when absent. */
  maxAbsError?: number;
  /** Largest accepted child/parent median latency; unchecked when absent. */
  maxLatencyRatio?: number;
  /** Largest accepted child/parent file size; unchecked when absent. */
  maxSizeRatio?: number;
}

export interface GateOptions {
  parent: Uint8Array;
  child: Uint8Array;
  calibration: CalibrationSet;
  tolerance?: GateTolerance;
  /** Timed single-row inferences per model; default 200. */
  latencyRuns?: number;
  /** onnxruntime intra-op threads per model; default 1, as on the agent. */
  intraOpNumThreads?: number;
  /** Where the temporary model files go; default the OS temp directory. */
  tempDir?: string;
}

export interface GateResult {
  passed: boolean;
  /** One line per exceeded tolerance, naming it and the measured value. */
  failures: string[];
  /** The tolerance applied, defaults filled in. */
  tolerance: GateTolerance & { maxAccuracyDropPoints: number };
  calibration: { count: number; labelled: boolean; inputName: string; inputSize: number; outputName: string; outputSize: number };
  /** Labelled calibration only: accuracy in points (0–100). */
  accuracy?: { parent: number; child: number; dropPoints: number };
  /** Share (0–1) of rows where parent and child pick the same class. */
  agreement: number;
  /** Absolute differences between the outputs, over every value (Infinity when the child is non-finite). */
  error: { maxAbs: number; meanAbs: number; nonFiniteChild: number; nonFiniteParent: number };
  size: { parent: number; child: number; ratio: number };
  latency: { parentMs: number; childMs: number; ratio: number; runs: number };
}

const DEFAULT_TOLERANCE = { maxAccuracyDropPoints: 0.5, minAgreement: 0.99 } as const;
const DEFAULT_LATENCY_RUNS = 200;
const WARMUP_RUNS = 10;
const LATENCY_BATCH = 10;
/** Rows per inference while evaluating, when the batch dimension is free. */
const EVAL_CHUNK = 256;

export async function evaluateQuantization(options: GateOptions): Promise<GateResult> {
  const tolerance = resolveTolerance(options.tolerance);
  const latencyRuns = options.latencyRuns ?? DEFAULT_LATENCY_RUNS;
  if (!Number.isInteger(latencyRuns) || latencyRuns < 1) throw new QuantizationError('CAIRN_QUANT_BAD_OPTIONS', `latencyRuns must be a positive integer, got ${latencyRuns}`);
  const { calibration } = options;
  const basics = checkCalibrationShape(calibration);
  if (basics.length > 0) throw mismatch(basics);
  const width = calibration.inputs.length / calibration.count;

  const dir = await mkdtemp(join(options.tempDir ?? tmpdir(), 'cairn-quant-gate-'));
  const runtime = createWorkerRuntime({ intraOpNumThreads: options.intraOpNumThreads ?? 1 });
  try {
    const parent = await load(runtime, dir, 'parent', options.parent);
    const child = await load(runtime, dir, 'child', options.child);
    const { inputName, outputName, batchDim } = checkSignatures(parent, child, calibration, width);

    const run = async (session: ModelSession, role: string): Promise<{ values: Float32Array; width: number }> => {
      try {
        return await runAll(session, inputName, outputName, calibration.inputs, calibration.count, width, batchDim);
      } catch (error) {
        if (error instanceof ModelRuntimeError) throw new QuantizationError('CAIRN_QUANT_MODEL_FAILED', `the ${role} model failed on the calibration set: ${error.message}`);
        throw error;
      }
    };
    const parentOut = await run(parent, 'parent');
    const childOut = await run(child, 'child');
    if (parentOut.width !== childOut.width) {
      throw mismatch([`output '${outputName}': the parent gives ${parentOut.width} values per row, the child ${childOut.width}`]);
    }
    const labelProblems = checkLabels(calibration.labels, parentOut.width);
    if (labelProblems.length > 0) throw mismatch(labelProblems);

    const compared = compareOutputs(parentOut.values, childOut.values, calibration.count, parentOut.width);
    const latency = await measureLatency(parent, child, inputName, calibration, width, batchDim, latencyRuns);
    const result: GateResult = {
      passed: false,
      failures: [],
      tolerance,
      calibration: { count: calibration.count, labelled: calibration.labels !== undefined, inputName, inputSize: width, outputName, outputSize: parentOut.width },
      agreement: compared.agreement,
      error: compared.error,
      size: { parent: options.parent.length, child: options.child.length, ratio: options.child.length / options.parent.length },
      latency,
    };
    if (calibration.labels) {
      const parentAcc = accuracyPoints(compared.parentArgmax, calibration.labels);
      const childAcc = accuracyPoints(compared.childArgmax, calibration.labels);
      result.accuracy = { parent: parentAcc, child: childAcc, dropPoints: parentAcc - childAcc };
    }
    result.failures = judge(result, tolerance, options.tolerance?.minAgreement !== undefined);
    result.passed = result.failures.length === 0;
    return result;
  } finally {
    await runtime.close();
    await rm(dir, { recursive: true, force: true });
  }
}

function resolveTolerance(given: GateTolerance | undefined): GateResult['tolerance'] {
  const tolerance = { ...DEFAULT_TOLERANCE, ...stripUndefined(given ?? {}) };
  const bad = Object.entries(tolerance).filter(([, v]) => typeof v !== 'number' || !(v >= 0));
  if (bad.length > 0) throw new QuantizationError('CAIRN_QUANT_BAD_OPTIONS', `tolerance values must be non-negative numbers: ${bad.map(([k, v]) => `${k} = ${String(v)}`).join(', ')}`);
  if (tolerance.minAgreement > 1) throw new QuantizationError('CAIRN_QUANT_BAD_OPTIONS', `minAgreement is a share between 0 and 1, got ${tolerance.minAgreement}`);
  return tolerance;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function mismatch(problems: string[]): QuantizationError {
  return new QuantizationError('CAIRN_QUANT_CALIBRATION_MISMATCH', `the calibration data does not match the model: ${problems.join('; ')}`, problems);
}

/** What can be checked before any model is loaded. */
function checkCalibrationShape({ inputs, count, labels }: CalibrationSet): string[] {
  const problems: string[] = [];
  if (!(inputs instanceof Float32Array)) return ['inputs must be a Float32Array'];
  if (!Number.isInteger(count) || count < 1) return [`count must be a positive integer, got ${count}`];
  if (inputs.length === 0 || inputs.length % count !== 0) problems.push(`inputs has ${inputs.length} values, not a whole number of values per row for ${count} rows`);
  if (!inputs.every(Number.isFinite)) problems.push('inputs contain NaN or infinite values');
  if (labels !== undefined && !(labels instanceof Int32Array)) problems.push('labels must be an Int32Array');
  else if (labels !== undefined && labels.length !== count) problems.push(`${labels.length} labels for ${count} rows`);
  return problems;
}

function checkLabels(labels: Int32Array | undefined, classes: number): string[] {
  if (!labels) return [];
  const bad = [...labels.entries()].filter(([, l]) => l < 0 || l >= classes);
  if (bad.length === 0) return [];
  const shown = bad.slice(0, 5).map(([row, l]) => `row ${row}: ${l}`).join(', ');
  return [`${bad.length} label(s) outside the model's ${classes} output classes (${shown}${bad.length > 5 ? ', …' : ''})`];
}

async function load(runtime: ReturnType<typeof createWorkerRuntime>, dir: string, role: 'parent' | 'child', bytes: Uint8Array): Promise<ModelSession> {
  const path = join(dir, `${role}.onnx`);
  await writeFile(path, bytes);
  try {
    return await runtime.load(sha256Hex(bytes), path);
  } catch (error) {
    if (error instanceof ModelRuntimeError) throw new QuantizationError('CAIRN_QUANT_MODEL_FAILED', `onnxruntime cannot load the ${role} model: ${error.message}`);
    throw error;
  }
}

export type BatchDim = { fixed: number } | { fixed: undefined };

/** Lists every way the calibration set and the two signatures disagree; throws when there is any. */
function checkSignatures(parent: ModelSession, child: ModelSession, calibration: CalibrationSet, width: number): { inputName: string; outputName: string; batchDim: BatchDim } {
  const problems: string[] = [];
  const pick = (session: ModelSession, role: string): TensorSpecT | undefined => {
    const names = session.inputs.map((i) => i.name);
    if (calibration.inputName !== undefined) {
      const found = session.inputs.find((i) => i.name === calibration.inputName);
      if (!found) problems.push(`input name: the calibration feeds '${calibration.inputName}', the ${role} model's inputs are ${names.map((n) => `'${n}'`).join(', ')}`);
      if (session.inputs.length > 1) problems.push(`the ${role} model has ${session.inputs.length} inputs (${names.join(', ')}); the calibration feeds only one`);
      return found;
    }
    if (session.inputs.length !== 1) {
      problems.push(`the ${role} model has ${session.inputs.length} inputs (${names.join(', ')}); the calibration feeds exactly one`);
      return undefined;
    }
    return session.inputs[0];
  };
  const parentInput = pick(parent, 'parent');
  const childInput = pick(child, 'child');
  for (const [role, spec] of [['parent', parentInput], ['child', childInput]] as const) {
    if (!spec) continue;
    if (spec.type !== 'float32') problems.push(`input '${spec.name}' of the ${role} model is ${spec.type}; calibration inputs are float32`);
    if (spec.dims.length !== 2) {
      problems.push(`input '${spec.name}' of the ${role} model has shape [${spec.dims.join(', ')}]; the calibration gives rows of [batch, ${width}]`);
    } else if (typeof spec.dims[1] === 'number' && spec.dims[1] !== width) {
      problems.push(`input width: calibration rows have ${width} values, input '${spec.name}' of the ${role} model expects ${spec.dims[1]}`);
    }
  }
  if (parentInput && childInput && parentInput.name !== childInput.name) problems.push(`the parent's input is '${parentInput.name}', the child's '${childInput.name}'`);
  const outputName = parent.outputs[0]?.name;
  if (!outputName) problems.push('the parent model has no output');
  else if (!child.outputs.some((o) => o.name === outputName)) problems.push(`the child model has no output '${outputName}' (the parent's first output)`);
  if (problems.length > 0 || !parentInput || !outputName) throw mismatch(problems);
  const batch = parentInput.dims[0];
  return { inputName: parentInput.name, outputName, batchDim: { fixed: typeof batch === 'number' ? batch : undefined } };
}

/** Runs every calibration row; a fixed batch dimension is filled by repeating the last row. */
export async function runAll(session: ModelSession, inputName: string, outputName: string, inputs: Float32Array, count: number, width: number, batchDim: BatchDim): Promise<{ values: Float32Array; width: number }> {
  const chunk = batchDim.fixed ?? EVAL_CHUNK;
  const pieces: Float32Array[] = [];
  let outWidth = 0;
  for (let start = 0; start < count; start += chunk) {
    const rows = Math.min(chunk, count - start);
    const batch = batchDim.fixed ?? rows;
    const data = new Float32Array(batch * width);
    data.set(inputs.subarray(start * width, (start + rows) * width));
    for (let r = rows; r < batch; r++) data.copyWithin(r * width, (rows - 1) * width, rows * width);
    const { outputs } = await session.infer({ [inputName]: { dims: [batch, width], data } });
    const out = outputs[outputName];
    if (!out) throw new QuantizationError('CAIRN_QUANT_MODEL_FAILED', `the model returned no output '${outputName}'`);
    outWidth = out.data.length / batch;
    pieces.push(out.data.subarray(0, rows * outWidth));
  }
  const values = new Float32Array(count * outWidth);
  let offset = 0;
  for (const piece of pieces) {
    values.set(piece, offset);
    offset += piece.length;
  }
  return { values, width: outWidth };
}

function argmaxRows(values: Float32Array, count: number, width: number): Int32Array {
  const out = new Int32Array(count);
  for (let r = 0; r < count; r++) {
    let best = -1;
    let bestValue = -Infinity;
    for (let j = 0; j < width; j++) {
      const v = values[r * width + j]!;
      if (v > bestValue) {
        bestValue = v;
        best = j;
      }
    }
    out[r] = best; // -1 when the row is all NaN: it agrees with nothing and matches no label
  }
  return out;
}

function compareOutputs(parent: Float32Array, child: Float32Array, count: number, width: number) {
  const parentArgmax = argmaxRows(parent, count, width);
  const childArgmax = argmaxRows(child, count, width);
  let agree = 0;
  for (let r = 0; r < count; r++) if (parentArgmax[r] === childArgmax[r] && parentArgmax[r] !== -1) agree++;
  let maxAbs = 0;
  let sum = 0;
  let compared = 0;
  let nonFiniteChild = 0;
  let nonFiniteParent = 0;
  for (let i = 0; i < parent.length; i++) {
    const p = parent[i]!;
    const c = child[i]!;
    if (!Number.isFinite(p)) {
      nonFiniteParent++;
      continue;
    }
    if (!Number.isFinite(c)) {
      nonFiniteChild++;
      continue;
    }
    const d = Math.abs(p - c);
    maxAbs = Math.max(maxAbs, d);
    sum += d;
    compared++;
  }
  if (nonFiniteChild > 0) maxAbs = Infinity;
  return { parentArgmax, childArgmax, agreement: agree / count, error: { maxAbs, meanAbs: compared > 0 ? sum / compared : 0, nonFiniteChild, nonFiniteParent } };
}

function accuracyPoints(predicted: Int32Array, labels: Int32Array): number {
  let correct = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) correct++;
  return (100 * correct) / labels.length;
}

async function measureLatency(parent: ModelSession, child: ModelSession, inputName: string, calibration: CalibrationSet, width: number, batchDim: BatchDim, runs: number): Promise<GateResult['latency']> {
  const batch = batchDim.fixed ?? 1;
  let row = 0;
  const nextFeeds = () => {
    const data = new Float32Array(batch * width);
    for (let b = 0; b < batch; b++) data.set(calibration.inputs.subarray(row * width, (row + 1) * width), b * width);
    row = (row + 1) % calibration.count;
    return { [inputName]: { dims: [batch, width], data } };
  };
  const time = async (session: ModelSession, n: number, into: number[] | undefined): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const feeds = nextFeeds();
      const start = process.hrtime.bigint();
      await session.infer(feeds);
      into?.push(Number(process.hrtime.bigint() - start) / 1e6);
    }
  };
  await time(parent, WARMUP_RUNS, undefined);
  await time(child, WARMUP_RUNS, undefined);
  const parentTimes: number[] = [];
  const childTimes: number[] = [];
  for (let done = 0, round = 0; done < runs; done += LATENCY_BATCH, round++) {
    const n = Math.min(LATENCY_BATCH, runs - done);
    const order = round % 2 === 0 ? ([[parent, parentTimes], [child, childTimes]] as const) : ([[child, childTimes], [parent, parentTimes]] as const);
    for (const [session, times] of order) await time(session, n, times);
  }
  const parentMs = median(parentTimes);
  const childMs = median(childTimes);
  return { parentMs, childMs, ratio: childMs / parentMs, runs };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function judge(result: GateResult, tolerance: GateResult['tolerance'], agreementExplicit: boolean): string[] {
  const failures: string[] = [];
  const { accuracy, error } = result;
  if (error.nonFiniteChild > 0) failures.push(`the child produced ${error.nonFiniteChild} NaN or infinite output value(s) where the parent's are finite`);
  if (accuracy && accuracy.dropPoints > tolerance.maxAccuracyDropPoints) {
    failures.push(`accuracy dropped ${fmt(accuracy.dropPoints)} points (${fmt(accuracy.parent)}% → ${fmt(accuracy.child)}%), more than maxAccuracyDropPoints = ${tolerance.maxAccuracyDropPoints}`);
  }
  if ((!accuracy || agreementExplicit) && tolerance.minAgreement !== undefined && result.agreement < tolerance.minAgreement) {
    failures.push(`argmax agreement ${fmt(100 * result.agreement)}% is below minAgreement = ${tolerance.minAgreement}`);
  }
  if (tolerance.maxAbsError !== undefined && error.maxAbs > tolerance.maxAbsError) {
    failures.push(`max absolute output error ${error.maxAbs.toPrecision(3)} exceeds maxAbsError = ${tolerance.maxAbsError}`);
  }
  if (tolerance.maxSizeRatio !== undefined && result.size.ratio > tolerance.maxSizeRatio) {
    failures.push(`size ratio ${fmt(result.size.ratio)} (child ${result.size.child} B / parent ${result.size.parent} B) exceeds maxSizeRatio = ${tolerance.maxSizeRatio}`);
  }
  if (tolerance.maxLatencyRatio !== undefined && result.latency.ratio > tolerance.maxLatencyRatio) {
    failures.push(`latency ratio ${fmt(result.latency.ratio)} (child ${fmt(result.latency.childMs, 3)} ms / parent ${fmt(result.latency.parentMs, 3)} ms) exceeds maxLatencyRatio = ${tolerance.maxLatencyRatio}`);
  }
  return failures;
}

function fmt(value: number, digits = 2): string {
  return value.toFixed(digits);
}
