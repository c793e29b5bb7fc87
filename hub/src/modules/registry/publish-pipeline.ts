/**
 * The publishing pipeline behind `POST /api/v1/models/publish` and `cairn model push
 * --quantize int8`: from uploaded files (a model, calibration data, reference data) to a signed
 * bundle whose manifest records what was done.
 *
 *   validate with onnxruntime → [quantize to int8 → gate against the fp32 parent on the
 *   calibration set; refuse to publish on a breach] → [drift reference from the reference
 *   data] → sign and record
 *
 * Calibration and reference files are JSON: `{"inputs": number[][], "labels"?: number[]}`, one
 * row per example, each row as wide as the model's input. Labels make the gate compare
 * accuracy; without them it compares the two models' outputs with each other.
 */
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { buildDriftReference, type SignedManifestT, type TensorSpecT } from '@cairn/shared';
import { createWorkerRuntime } from '@cairn/agent/components/runtime/worker-runtime.js';
import type { HubContext } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { inspectOnnx, OnnxLoadError } from './onnx-inspect.js';
import { publishModel } from './publisher.js';
import { formatModelRef } from './model-ref.js';
import { quantizeInt8, QuantizationError, QUANTIZATION_SCHEME } from '../../training/quantizer.js';
import { evaluateQuantization, type GateResult } from '../../training/quantization-gate.js';
import { argmax } from '../../training/metrics.js';

export interface PublishRequest {
  name: string;
  version: string;
  description?: string;
  /** Digests of uploaded files. */
  model: string;
  quantize?: 'int8';
  calibration?: string;
  reference?: string;
  /** Largest accepted accuracy drop in points (labelled calibration); default 0.5. */
  tolerance?: number;
  classes?: string[];
  featureNames?: string[];
  /** Manifest sections the operator supplies (e.g. from a reference image); computed ones win. */
  sections?: { features?: Record<string, unknown>; lineage?: Record<string, unknown>; health?: Record<string, unknown>; driftReference?: Record<string, unknown>; quantization?: Record<string, unknown> };
}

export interface PublishOutcome {
  bundle: SignedManifestT;
  gate?: GateResult;
}

interface Rows {
  inputs: Float32Array;
  count: number;
  width: number;
  labels?: Int32Array;
}

export async function runPublishPipeline(ctx: HubContext, request: PublishRequest): Promise<PublishOutcome> {
  const ref = formatModelRef(request);
  if (ctx.registry.get(request.name, request.version)) throw Errors.modelExists(ref);
  if (request.quantize && !request.calibration) throw Errors.badRequest('quantization needs calibration data (calibration: the digest of an uploaded calibration file)');
  const parentBytes = readUpload(ctx, request.model);
  const parentSignature = await inspect(ctx.blobs.pathOf(request.model));
  const input = parentSignature.inputs[0]!;
  const width = rowWidth(input);

  let published: { bytes: Uint8Array; digest: string; signature: typeof parentSignature } = { bytes: parentBytes, digest: request.model, signature: parentSignature };
  let quantization: Record<string, unknown> | undefined;
  let gate: GateResult | undefined;
  if (request.quantize) {
    const calibration = readRows(ctx, request.calibration!, 'calibration', input, width);
    let result;
    try {
      result = quantizeInt8(parentBytes);
    } catch (err) {
      if (err instanceof QuantizationError) throw Errors.invalidModel(err.message);
      throw err;
    }
    if (result.report.quantized.length === 0) {
      quantization = { scheme: QUANTIZATION_SCHEME, unchanged: result.report.unchangedReason ?? 'no quantizable weights', skipped: result.report.skipped };
    } else {
      gate = await evaluateQuantization({
        parent: parentBytes,
        child: result.model,
        calibration: { inputs: calibration.inputs, count: calibration.count, inputName: input.name, ...(calibration.labels ? { labels: calibration.labels } : {}) },
        tolerance: { maxAccuracyDropPoints: request.tolerance ?? 0.5 },
      });
      // Comparing against a parent that is itself broken proves nothing: refuse that too.
      const failures = [...gate.failures];
      if (gate.error.nonFiniteParent > 0) failures.push(`the fp32 parent itself produced ${gate.error.nonFiniteParent} NaN or infinite output value(s) on the calibration data`);
      if (failures.length > 0) throw Errors.quantizationGate(failures);
      const staged = await ctx.blobs.stage(Readable.from([Buffer.from(result.model)]), Number.MAX_SAFE_INTEGER);
      staged.commit();
      published = { bytes: result.model, digest: staged.digest, signature: await inspect(ctx.blobs.pathOf(staged.digest)) };
      quantization = {
        scheme: QUANTIZATION_SCHEME,
        parent: { digest: request.model, size: parentBytes.length, ...(gate.accuracy ? { accuracy: gate.accuracy.parent } : {}) },
        size: result.model.length,
        sizeRatio: round(gate.size.ratio, 4),
        ...(gate.accuracy ? { accuracy: gate.accuracy.child, accuracyDropPoints: round(gate.accuracy.dropPoints, 2) } : {}),
        agreement: round(gate.agreement, 4),
        maxAbsError: round(gate.error.maxAbs, 6),
        latencyRatio: round(gate.latency.ratio, 3),
        calibrationRows: calibration.count,
        tolerance: gate.tolerance,
        quantizedWeights: result.report.quantized.length,
        skipped: result.report.skipped.map((s) => ({ node: s.node, reason: s.reason })),
        rewritten: result.report.rewritten.map((r) => ({ node: r.node, from: r.from, to: r.to })),
      };
    }
  }

  let driftReference: Record<string, unknown> | undefined;
  if (request.reference) {
    const reference = readRows(ctx, request.reference, 'reference', input, width);
    const outputs = await runRows(ctx.blobs.pathOf(published.digest), published.digest, input.name, reference);
    const outputWidth = outputs.length / reference.count;
    const classes = request.classes ?? Array.from({ length: outputWidth }, (_, i) => `class${i}`);
    if (classes.length !== outputWidth) throw Errors.badRequest(`${classes.length} class names for a model with ${outputWidth} outputs`);
    const featureNames = request.featureNames ?? Array.from({ length: width }, (_, i) => `x${i}`);
    if (featureNames.length !== width) throw Errors.badRequest(`${featureNames.length} feature names for a ${width}-wide input`);
    driftReference = buildDriftReference({ features: reference.inputs, featureCount: width, featureNames, predictedClasses: argmax(outputs, reference.count, outputWidth), classes }) as unknown as Record<string, unknown>;
  }

  const bundle = publishModel(ctx, {
    name: request.name,
    version: request.version,
    digest: published.digest,
    size: published.bytes.length,
    inputs: published.signature.inputs,
    outputs: published.signature.outputs,
    ...(request.description ? { description: request.description } : {}),
    sections: { ...request.sections, ...(quantization ? { quantization } : {}), ...(driftReference ? { driftReference } : {}) },
  });
  return { bundle, ...(gate ? { gate } : {}) };
}

function readUpload(ctx: HubContext, digest: string): Buffer {
  if (!/^[0-9a-f]{64}$/.test(digest) || !ctx.blobs.has(digest)) throw Errors.uploadNotFound(digest);
  return readFileSync(ctx.blobs.pathOf(digest));
}

async function inspect(path: string) {
  try {
    return await inspectOnnx(path);
  } catch (err) {
    if (err instanceof OnnxLoadError) throw Errors.invalidModel(err.message);
    throw err;
  }
}

/** The width of one row of a [batch, width] input. */
function rowWidth(input: TensorSpecT): number {
  const width = input.dims[input.dims.length - 1];
  if (input.dims.length !== 2 || typeof width !== 'number') throw Errors.badRequest(`the pipeline handles models with one [batch, width] input; ${input.name} is [${input.dims.join(', ')}]`);
  return width;
}

/** Parses a calibration or reference file and checks it against the model's input. */
function readRows(ctx: HubContext, digest: string, what: string, input: TensorSpecT, width: number): Rows {
  let value: unknown;
  try {
    value = JSON.parse(readUpload(ctx, digest).toString('utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) throw Errors.badCalibration(`the ${what} file is not JSON: ${err.message}`);
    throw err;
  }
  const { inputs, labels } = (value ?? {}) as { inputs?: unknown; labels?: unknown };
  if (!Array.isArray(inputs) || inputs.length === 0) throw Errors.badCalibration(`the ${what} file needs "inputs": a non-empty array of rows`);
  const problems: string[] = [];
  const flat = new Float32Array(inputs.length * width);
  inputs.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== width) {
      if (problems.length < 5) problems.push(`row ${r} has ${Array.isArray(row) ? row.length : 'no'} values, ${input.name} takes ${width}`);
      return;
    }
    row.forEach((v, c) => {
      if (typeof v !== 'number' || !Number.isFinite(v)) {
        if (problems.length < 5) problems.push(`row ${r} column ${c} is not a finite number`);
      } else flat[r * width + c] = v;
    });
  });
  if (problems.length > 0) throw Errors.badCalibration(`the ${what} data does not match the model input ${input.name} [batch, ${width}]: ${problems.join('; ')}`);
  const rows: Rows = { inputs: flat, count: inputs.length, width };
  if (labels !== undefined) {
    if (!Array.isArray(labels) || labels.length !== inputs.length || !labels.every((l) => Number.isInteger(l) && l >= 0)) {
      throw Errors.badCalibration(`"labels" must hold one non-negative class index per row (${inputs.length})`);
    }
    rows.labels = Int32Array.from(labels as number[]);
  }
  return rows;
}

/** Runs every row through a model in a worker (onnxruntime blocks its thread) and returns the flat output. */
async function runRows(path: string, digest: string, inputName: string, rows: Rows): Promise<Float32Array> {
  const runtime = createWorkerRuntime();
  try {
    const session = await runtime.load(digest, path);
    const outputs = await session.infer({ [inputName]: { dims: [rows.count, rows.width], data: rows.inputs } });
    const first = Object.values(outputs)[0];
    if (!first) throw Errors.invalidModel('the model produced no output');
    return first.data;
  } finally {
    await runtime.close();
  }
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
