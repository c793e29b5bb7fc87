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
import { buildDriftReference, parseDriftReference, type SignedManifestT, type TensorSpecT } from '@cairn/shared';
import { createWorkerRuntime } from '@cairn/agent/components/runtime/worker-runtime.js';
import type { HubContext } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { inspectOnnx, OnnxLoadError } from './onnx-inspect.js';
import { publishModel } from './publisher.js';
import type { AuditActor } from '../audit/audit-log.js';
import { formatModelRef } from './model-ref.js';
import { quantizeInt8, QuantizationError, QUANTIZATION_SCHEME } from '../../training/quantizer.js';
import { evaluateQuantization, runAll, type BatchDim, type GateResult } from '../../training/quantization-gate.js';
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
  /** Largest accepted absolute output difference; required without labels when the model has a single output. */
  maxAbsError?: number;
  /** Smallest accepted argmax agreement without labels (0–1); default 0.99. */
  minAgreement?: number;
  maxLatencyRatio?: number;
  maxSizeRatio?: number;
  classes?: string[];
  featureNames?: string[];
  /**
   * Manifest sections the operator supplies (e.g. from a reference image). They are the
   * operator's claims, signed as given; `driftReference` is checked for consistency with the
   * model. The `quantization` section is only ever the hub's own measurement.
   */
  sections?: { features?: Record<string, unknown>; lineage?: Record<string, unknown>; health?: Record<string, unknown>; driftReference?: Record<string, unknown> };
}

export interface PublishOutcome {
  bundle: SignedManifestT;
  gate?: GateResult;
}

/** Calibration and reference files are parsed in memory on the hub: bounded. */
export const MAX_DATA_FILE_BYTES = 16 * 1024 * 1024;
export const MAX_DATA_ROWS = 100_000;

interface Rows {
  inputs: Float32Array;
  count: number;
  width: number;
  labels?: Int32Array;
}

/** One publish at a time: each holds models and data in memory and runs onnxruntime workers. */
let queue: Promise<unknown> = Promise.resolve();

export function runPublishPipeline(ctx: HubContext, actor: AuditActor, request: PublishRequest): Promise<PublishOutcome> {
  const run = queue.then(() => publish(ctx, actor, request));
  queue = run.catch(() => undefined);
  return run;
}

async function publish(ctx: HubContext, actor: AuditActor, request: PublishRequest): Promise<PublishOutcome> {
  const ref = formatModelRef(request);
  if (ctx.registry.get(request.name, request.version)) throw Errors.modelExists(ref);
  if (request.quantize && !request.calibration) throw Errors.badRequest('quantization needs calibration data (calibration: the digest of an uploaded calibration file)');
  const parentBytes = readUpload(ctx, request.model);
  const parentSignature = await inspect(ctx.blobs.pathOf(request.model));
  const needsRows = request.quantize !== undefined || request.reference !== undefined || request.sections?.driftReference !== undefined;
  if (needsRows && parentSignature.inputs.length !== 1) {
    throw Errors.badRequest(`quantization and drift references handle models with one [batch, width] input; this one has ${parentSignature.inputs.length}`);
  }
  const input = parentSignature.inputs[0]!;
  const width = needsRows ? rowWidth(input) : 0;

  let published: { bytes: Uint8Array; digest: string; signature: typeof parentSignature } = { bytes: parentBytes, digest: request.model, signature: parentSignature };
  let quantization: Record<string, unknown> | undefined;
  let gate: GateResult | undefined;
  if (request.quantize) {
    const calibration = readRows(ctx, request.calibration!, 'calibration', input, width);
    const outputWidth = lastDim(parentSignature.outputs[0]);
    if (!calibration.labels && outputWidth === 1 && request.maxAbsError === undefined) {
      throw Errors.badRequest('without labels the gate compares predictions, which a single-output model cannot fail: give maxAbsError (or labelled calibration data)');
    }
    if (calibration.labels && outputWidth !== undefined && calibration.labels.some((l) => l >= outputWidth)) {
      throw Errors.badCalibration(`labels must be class indices below ${outputWidth}, the width of the model's output`);
    }
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
      try {
        gate = await evaluateQuantization({
          parent: parentBytes,
          child: result.model,
          calibration: { inputs: calibration.inputs, count: calibration.count, inputName: input.name, ...(calibration.labels ? { labels: calibration.labels } : {}) },
          tolerance: {
            maxAccuracyDropPoints: request.tolerance ?? 0.5,
            ...(request.maxAbsError !== undefined ? { maxAbsError: request.maxAbsError } : {}),
            ...(request.minAgreement !== undefined ? { minAgreement: request.minAgreement } : {}),
            ...(request.maxLatencyRatio !== undefined ? { maxLatencyRatio: request.maxLatencyRatio } : {}),
            ...(request.maxSizeRatio !== undefined ? { maxSizeRatio: request.maxSizeRatio } : {}),
          },
        });
      } catch (err) {
        if (err instanceof QuantizationError) throw err.code === 'CAIRN_QUANT_CALIBRATION_MISMATCH' ? Errors.badCalibration(err.message) : Errors.invalidModel(err.message);
        throw err;
      }
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
    const outputs = await runRows(ctx.blobs.pathOf(published.digest), published.digest, input, published.signature.outputs[0]?.name, reference);
    const classes = request.classes ?? Array.from({ length: outputs.width }, (_, i) => `class${i}`);
    if (classes.length !== outputs.width) throw Errors.badRequest(`${classes.length} class names for a model with ${outputs.width} outputs`);
    const featureNames = request.featureNames ?? Array.from({ length: width }, (_, i) => `x${i}`);
    if (featureNames.length !== width) throw Errors.badRequest(`${featureNames.length} feature names for a ${width}-wide input`);
    const predicted = argmax(outputs.values, reference.count, outputs.width);
    const broken = predicted.reduce((n, p) => n + (p < 0 ? 1 : 0), 0);
    if (broken > 0) throw Errors.invalidModel(`the model produced NaN outputs on ${broken} of ${reference.count} reference rows; no drift reference can be built from it`);
    driftReference = buildDriftReference({ features: reference.inputs, featureCount: width, featureNames, predictedClasses: predicted, classes }) as unknown as Record<string, unknown>;
  } else if (request.sections?.driftReference) {
    checkDriftReference(request.sections.driftReference, width);
  }

  const bundle = publishModel(ctx, actor, {
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
  if (/^[0-9a-f]{64}$/.test(digest) && ctx.blobs.has(digest) && ctx.blobs.size(digest) > MAX_DATA_FILE_BYTES) {
    throw Errors.badCalibration(`the ${what} file is larger than ${MAX_DATA_FILE_BYTES / 1024 / 1024} MiB; a few thousand representative rows are enough`);
  }
  let value: unknown;
  try {
    value = JSON.parse(readUpload(ctx, digest).toString('utf8'));
  } catch (err) {
    if (err instanceof SyntaxError) throw Errors.badCalibration(`the ${what} file is not JSON: ${err.message}`);
    throw err;
  }
  const { inputs, labels } = (value ?? {}) as { inputs?: unknown; labels?: unknown };
  if (!Array.isArray(inputs) || inputs.length === 0) throw Errors.badCalibration(`the ${what} file needs "inputs": a non-empty array of rows`);
  if (inputs.length > MAX_DATA_ROWS) throw Errors.badCalibration(`the ${what} file has ${inputs.length} rows; at most ${MAX_DATA_ROWS}`);
  const problems: string[] = [];
  const flat = new Float32Array(inputs.length * width);
  inputs.forEach((row, r) => {
    if (!Array.isArray(row) || row.length !== width) {
      if (problems.length < 5) problems.push(`row ${r} has ${Array.isArray(row) ? row.length : 'no'} values, ${input.name} takes ${width}`);
      return;
    }
    row.forEach((v, c) => {
      if (typeof v !== 'number' || !Number.isFinite(Math.fround(v))) {
        if (problems.length < 5) problems.push(`row ${r} column ${c} is not a finite float32 number`);
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

/** Runs every row through a model in a worker (onnxruntime blocks its thread), in bounded chunks. */
async function runRows(path: string, digest: string, input: TensorSpecT, outputName: string | undefined, rows: Rows): Promise<{ values: Float32Array; width: number }> {
  if (!outputName) throw Errors.invalidModel('the model has no output');
  const runtime = createWorkerRuntime();
  try {
    const session = await runtime.load(digest, path);
    const batch = input.dims[0];
    return await runAll(session, input.name, outputName, rows.inputs, rows.count, rows.width, { fixed: typeof batch === 'number' ? batch : undefined } as BatchDim);
  } catch (err) {
    if (err instanceof QuantizationError) throw Errors.invalidModel(err.message);
    throw err;
  } finally {
    await runtime.close();
  }
}

function lastDim(spec: TensorSpecT | undefined): number | undefined {
  const d = spec?.dims[spec.dims.length - 1];
  return typeof d === 'number' ? d : undefined;
}

/** An operator-supplied drift reference must be one the agents can use (`parseDriftReference`) and describe this model's input. */
function checkDriftReference(section: Record<string, unknown>, width: number): void {
  const parsed = parseDriftReference(section);
  const problem = !parsed.ok ? parsed.problem : parsed.reference.features.length !== width ? `${parsed.reference.features.length} feature histograms for a ${width}-wide input` : null;
  if (problem) throw Errors.badRequest(`sections.driftReference does not describe this model: ${problem}`);
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits;
