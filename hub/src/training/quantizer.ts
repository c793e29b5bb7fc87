/**
 * int8 weight-only quantization of any ONNX model, in the QDQ layout that onnxruntime fuses.
 *
 * Contract of `quantizeInt8(model)`:
 * - Every `MatMul` and `Gemm` of the main graph (ai.onnx domain) whose B input is a 2-D FLOAT
 *   initializer used by that node alone has B replaced by `W_q` (INT8 `[K, N]`, symmetric,
 *   round half to even, range ±127), `W_s` (FLOAT `[N]`, max|column| / 127 per output channel)
 *   and one `DequantizeLinear(W_q, W_s, axis = 1) → W_dequantized` node placed just before the
 *   consumer. There is no zero-point tensor: the zero point of int8 DequantizeLinear defaults to
 *   0, and onnxruntime 1.30 fuses the pattern into `com.microsoft:MatMulNBits` (bits = 8) with or
 *   without one (checked), so it would only cost N bytes per weight.
 * - A `Gemm` with transB = 1 (how PyTorch exports Linear) gets its weight transposed to `[K, N]`
 *   and transB = 0: onnxruntime does not fuse a DequantizeLinear that feeds a transposed B.
 * - onnxruntime 1.30 does not fuse a quantized MatMul/Gemm whose only consumer is a `Relu` or
 *   `Clip` that itself feeds exactly one node and is no graph output (its QDQ selection looks for a Relu/Clip made
 *   redundant by a following QuantizeLinear, finds none, and gives up on the whole group:
 *   `GetQDQSelection` in qdq_selectors.cc). That is every hidden layer of an MLP, and the unfused
 *   DequantizeLinear then runs on every inference (5–16× slower than fp32, measured). So such a
 *   `Relu` becomes `Max(x, 0)` and such a `Clip(x, min, max)` becomes `Min(Max(x, min), max)`:
 *   the same values (NaN propagates; Relu(-0) = -0 becomes +0), listed in `report.rewritten`.
 *   `rewriteActivations: false` keeps them, and those layers unfused.
 * - Left in float, each listed in `report.skipped` with a code and a reason: weights read by more
 *   than one consumer (tied/shared: onnxruntime fuses a DequantizeLinear only into its single
 *   consumer, so fusing both would need one int8 copy per consumer, untying them in the file;
 *   that is the model owner's call, not the quantizer's), nodes inside subgraphs (If/Loop/
 *   Scan bodies are not visited), weights that are not initializers (produced by a node, a graph
 *   input, an initializer that is also a graph input and so overridable), non-2-D, non-FLOAT,
 *   external or non-finite weights, Gemm with transA = 1 or alpha/beta ≠ 1, names the caller
 *   excludes, and everything when the opset cannot be raised (below).
 * - DequantizeLinear with `axis` needs opset 13: a default-domain import below 13 is raised to
 *   13 (IR version to at least 7) only when no operator in the model changed meaning in between
 *   (onnx-graph.ts); otherwise nothing is quantized and the reason says to convert the model
 *   first. Imports at 13…17 are kept, so Debian's onnx checker (≤ 17) can still check the result.
 * - Everything else keeps its original bytes: fields are copied from the input at the wire level
 *   (see onnx-graph.ts for why), quantized initializers take the place of the float one, and the
 *   metadata entry `cairn.quantization` (JSON: scheme, counts) is added or replaced.
 * - The output is a pure function of the input bytes and options.
 * - With nothing to quantize the input array itself is returned, and `report.unchangedReason`
 *   says why. Bytes that are not a readable ModelProto throw a `QuantizationError`.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';
import {
  AttributeType,
  collectNames,
  concatBytes,
  DataType,
  dataTypeName,
  decodeModel,
  defaultOpsetVersion,
  fieldBytes,
  float32Bytes,
  forEachNodeDeep,
  GraphField,
  hasExternalData,
  int8TensorProto,
  isDefaultDomain,
  lengthDelimitedField,
  ModelField,
  NodeField,
  nodeLabel,
  OnnxFormatError,
  opsetRaiseBlockers,
  outerScopeReads,
  payloadBytes,
  readFloatTensor,
  readWireFields,
  stringField,
  subgraphsOf,
  tensorDims,
  toNumber,
  varintField,
  type DecodedModel,
  type WireField,
} from './onnx-graph.js';

const { onnx } = onnxProto;

export const QUANTIZATION_SCHEME = 'int8-weight-only-per-channel-qdq';
export const QUANTIZATION_METADATA_KEY = 'cairn.quantization';
/** DequantizeLinear gained `axis` (per-channel scales) in opset 13. */
export const MIN_QDQ_OPSET = 13;
/** IR version 7 is the first that may import opset 13. */
const MIN_QDQ_IR_VERSION = 7;
const INT8_MAX = 127;

export type QuantizationErrorCode =
  /** The bytes are not a readable ONNX model (truncated, not protobuf, no graph…). */
  | 'CAIRN_QUANT_MALFORMED_MODEL'
  /** The options name something that does not exist or are of the wrong type. */
  | 'CAIRN_QUANT_BAD_OPTIONS'
  /** Calibration data does not match the model's input/output signature (quantization-gate.ts). */
  | 'CAIRN_QUANT_CALIBRATION_MISMATCH'
  /** onnxruntime cannot load or run the parent or the child (quantization-gate.ts). */
  | 'CAIRN_QUANT_MODEL_FAILED';

/** The one error type of quantization and its gate; `problems` lists every issue found. */
export class QuantizationError extends Error {
  constructor(
    readonly code: QuantizationErrorCode,
    message: string,
    readonly problems: string[] = [],
  ) {
    super(message);
    this.name = 'QuantizationError';
  }
}

export type SkipCode =
  | 'shared_weight'
  | 'in_subgraph'
  | 'not_initializer'
  | 'overridable_initializer'
  | 'not_2d'
  | 'not_float'
  | 'external_data'
  | 'non_finite'
  | 'gemm_attributes'
  | 'excluded'
  | 'opset';

export interface QuantizedWeight {
  /** The consuming node's name (`OpType#index` when it has none). */
  node: string;
  /** The float initializer that was replaced. */
  weight: string;
  /** Shape of the stored int8 weight, `[K, N]` (after transposition for Gemm transB = 1). */
  shape: [number, number];
  /** True when the weight was stored `[N, K]` for a Gemm with transB = 1. */
  transposed: boolean;
  /** Names of what replaced it. */
  quantized: string;
  scale: string;
  dequantized: string;
  dequantizeNode: string;
}

export interface SkippedWeight {
  node: string;
  weight?: string;
  code: SkipCode;
  reason: string;
}

export interface RewrittenActivation {
  /** The Relu or Clip node that was replaced. */
  node: string;
  from: 'Relu' | 'Clip';
  /** What computes it now: 'Max', 'Min', 'Max+Min' or 'Identity' (a Clip without bounds). */
  to: string;
  /** The quantized node it follows. */
  after: string;
}

export interface QuantizationReport {
  scheme: typeof QUANTIZATION_SCHEME;
  quantized: QuantizedWeight[];
  skipped: SkippedWeight[];
  /** Activations rewritten so that onnxruntime fuses the layer before them (see the header). */
  rewritten: RewrittenActivation[];
  /** Set when the model is returned unchanged. */
  unchangedReason?: string;
  /** Default-domain opset before and after (raised to 13 when it was lower). */
  opset: { before: number | undefined; after: number | undefined };
  sizeBefore: number;
  sizeAfter: number;
}

export interface QuantizeOptions {
  /** Node or weight names to leave in float (e.g. a sensitive last layer). Unknown names throw. */
  exclude?: readonly string[];
  /** Rewrite Relu/Clip after a quantized layer so that onnxruntime fuses it; default true. */
  rewriteActivations?: boolean;
}

export interface QuantizationResult {
  model: Uint8Array;
  report: QuantizationReport;
}

/** One weight to replace, decided during analysis. */
interface WeightPlan {
  nodeIndex: number;
  initializerIndex: number;
  entry: QuantizedWeight;
  q: Int8Array;
  scales: Float32Array;
  /** Gemm transB = 1: the node's transB attribute must become 0. */
  resetTransB: boolean;
  /** The Relu/Clip after it that blocks the fusion, if any. */
  activation?: ActivationPlan;
}

interface ActivationPlan {
  nodeIndex: number;
  node: OnnxTypes.INodeProto;
  entry: RewrittenActivation;
  /** Clip with both bounds: the tensor between its Max and its Min. */
  intermediate?: string;
}

export function quantizeInt8(model: Uint8Array, options: QuantizeOptions = {}): QuantizationResult {
  try {
    return quantizeDecoded(model, decodeModel(model), options);
  } catch (error) {
    if (error instanceof OnnxFormatError) throw new QuantizationError('CAIRN_QUANT_MALFORMED_MODEL', error.message, [error.message]);
    throw error;
  }
}

function quantizeDecoded(model: Uint8Array, decoded: DecodedModel, options: QuantizeOptions): QuantizationResult {
  const opsetBefore = defaultOpsetVersion(decoded);
  const { plans, skipped, zeroName } = analyse(decoded, options);

  let opsetAfter = opsetBefore;
  if (plans.length > 0 && (opsetBefore === undefined || opsetBefore < MIN_QDQ_OPSET)) {
    const blockers = opsetBefore === undefined ? ['the model does not import the ai.onnx operator set'] : opsetRaiseBlockers(decoded, opsetBefore, MIN_QDQ_OPSET);
    if (blockers.length > 0) {
      const reason = `per-channel DequantizeLinear needs opset ${MIN_QDQ_OPSET}, the model is at ${opsetBefore ?? 'none'} and cannot be raised safely (${blockers.join('; ')}); convert it first, e.g. with onnx.version_converter`;
      for (const plan of plans.splice(0)) skipped.push({ node: plan.entry.node, weight: plan.entry.weight, code: 'opset', reason });
    } else {
      opsetAfter = MIN_QDQ_OPSET;
    }
  }
  const report: QuantizationReport = {
    scheme: QUANTIZATION_SCHEME,
    quantized: plans.map((p) => p.entry),
    skipped,
    rewritten: plans.flatMap((p) => (p.activation ? [p.activation.entry] : [])),
    opset: { before: opsetBefore, after: opsetAfter },
    sizeBefore: model.length,
    sizeAfter: model.length,
  };
  if (plans.length === 0) {
    report.opset.after = opsetBefore;
    report.unchangedReason = skipped.length === 0 ? 'the main graph has no MatMul or Gemm node with a weight to quantize' : `no weight can be quantized: ${skipped.length} left in float (see skipped)`;
    return { model, report };
  }
  const metadata = JSON.stringify({ scheme: QUANTIZATION_SCHEME, weightType: 'int8', symmetric: true, axis: 1, quantized: plans.length, skipped: skipped.length });
  const out = writeModel(model, decoded, plans, {
    zeroName,
    opset: opsetAfter !== opsetBefore ? opsetAfter : undefined,
    irVersion: opsetAfter !== opsetBefore && toNumber(decoded.irVersion) < MIN_QDQ_IR_VERSION ? MIN_QDQ_IR_VERSION : undefined,
    // Before IR 4 every initializer had to be listed as a graph input too; those entries go with the float weight.
    dropInputs: toNumber(decoded.irVersion) < 4 ? new Set(plans.map((p) => p.entry.weight)) : new Set(),
    metadata,
  });
  report.sizeAfter = out.length;
  return { model: out, report };
}

// ---------------------------------------------------------------------------------------------
// Analysis

function analyse(model: DecodedModel, options: QuantizeOptions): { plans: WeightPlan[]; skipped: SkippedWeight[]; zeroName: string } {
  const graph = model.graph!;
  const nodes = graph.node ?? [];
  const exclude = new Set(options.exclude ?? []);
  checkExclude(graph, exclude);

  const initializerIndex = new Map<string, number[]>();
  (graph.initializer ?? []).forEach((t, i) => initializerIndex.set(t.name ?? '', [...(initializerIndex.get(t.name ?? '') ?? []), i]));
  const sparse = new Set((graph.sparseInitializer ?? []).map((t) => t.values?.name ?? ''));
  const graphInputs = new Set((graph.input ?? []).map((v) => v.name ?? ''));
  const graphOutputs = new Set((graph.output ?? []).map((v) => v.name ?? ''));
  const irVersion = toNumber(model.irVersion);
  const producers = new Map<string, { label: string; opType: string }>();
  nodes.forEach((n, i) => (n.output ?? []).forEach((o) => o && producers.set(o, { label: nodeLabel(n, i), opType: n.opType ?? '?' })));

  // Every read of every name, as onnxruntime counts edges: each node input slot, and each
  // subgraph's reads of outer names (implicit inputs of the node that holds the subgraph).
  const readers = new Map<string, { nodeIndex: number; label: string }[]>();
  const read = (name: string, nodeIndex: number, label: string): void => {
    if (name) readers.set(name, [...(readers.get(name) ?? []), { nodeIndex, label }]);
  };
  nodes.forEach((n, i) => {
    const label = nodeLabel(n, i);
    for (const input of n.input ?? []) read(input, i, label);
    for (const { attribute, graph: sub } of subgraphsOf(n)) for (const name of outerScopeReads(sub)) read(name, i, `${label}.${attribute}`);
  });

  const plans: WeightPlan[] = [];
  const skipped: SkippedWeight[] = [];
  const fresh = freshNamer(collectNames(graph));

  nodes.forEach((node, nodeIndex) => {
    if (!isCandidate(node)) {
      for (const { attribute, graph: sub } of subgraphsOf(node)) listSubgraphCandidates(sub, `${nodeLabel(node, nodeIndex)}.${attribute}`, skipped);
      return;
    }
    const label = nodeLabel(node, nodeIndex);
    const weight = node.input?.[1] ?? '';
    const skip = (code: SkipCode, reason: string): void => void skipped.push({ node: label, weight, code, reason });
    if (exclude.has(label) || exclude.has(weight)) return skip('excluded', 'excluded by the caller');
    const gemm = node.opType === 'Gemm' ? gemmAttributes(node) : undefined;
    if (gemm && gemm.transA !== 0) return skip('gemm_attributes', 'Gemm with transA = 1 is not fused by onnxruntime');
    if (gemm && (gemm.alpha !== 1 || gemm.beta !== 1)) return skip('gemm_attributes', `Gemm with alpha = ${gemm.alpha}, beta = ${gemm.beta} (only 1 is fused by onnxruntime)`);
    const indices = initializerIndex.get(weight);
    if (!indices) {
      const producer = producers.get(weight);
      if (producer) {
        const already = producer.opType === 'DequantizeLinear' ? ' (already quantized)' : '';
        return skip('not_initializer', `the weight is computed by node ${producer.label} (${producer.opType})${already}, not a constant initializer`);
      }
      if (graphInputs.has(weight)) return skip('not_initializer', 'the weight is a graph input, not a constant initializer');
      if (sparse.has(weight)) return skip('not_initializer', 'the weight is a sparse initializer');
      return skip('not_initializer', 'the weight is not defined in the graph');
    }
    if (indices.length > 1) return skip('not_initializer', `${indices.length} initializers share the name`);
    if (irVersion >= 4 && graphInputs.has(weight)) return skip('overridable_initializer', 'the initializer is also a graph input, so a caller may override it');
    const uses = [...(readers.get(weight) ?? []).map((r) => r.label), ...(graphOutputs.has(weight) ? ['graph output'] : [])];
    if (uses.length > 1) return skip('shared_weight', `shared or tied: read ${uses.length} times (${uses.join(', ')}); each quantized weight needs its own initializer`);
    const tensor = graph.initializer![indices[0]!]!;
    if (tensor.dataType !== DataType.FLOAT) return skip('not_float', `the weight is ${dataTypeName(tensor.dataType)}, only FLOAT weights are quantized`);
    const dims = tensorDims(tensor);
    if (dims.length !== 2) return skip('not_2d', `the weight has shape [${dims.join(', ')}]; only 2-D weights are quantized`);
    if (dims.includes(0)) return skip('not_2d', `the weight has shape [${dims.join(', ')}] and no values`);
    if (hasExternalData(tensor)) return skip('external_data', 'the weight is stored as external data outside the model file');
    let values = readFloatTensor(tensor);
    if (!values.every(Number.isFinite)) return skip('non_finite', 'the weight has NaN or infinite values');

    let [k, n] = dims as [number, number];
    const transposed = gemm !== undefined && gemm.transB !== 0;
    if (transposed) {
      values = transpose(values, k, n);
      [k, n] = [n, k];
    }
    const { q, scales } = quantizeColumns(values, k, n);
    const activation = options.rewriteActivations === false ? undefined : blockingActivation(node, label, nodes, readers, graphOutputs);
    if (activation?.entry.to === 'Max+Min') activation.intermediate = fresh(`${activation.node.output![0]}_lower_bounded`);
    plans.push({
      nodeIndex,
      initializerIndex: indices[0]!,
      q,
      scales,
      resetTransB: transposed,
      ...(activation ? { activation } : {}),
      entry: {
        node: label,
        weight,
        shape: [k, n],
        transposed,
        quantized: fresh(`${weight}_quantized`),
        scale: fresh(`${weight}_scale`),
        dequantized: fresh(`${weight}_dequantized`),
        dequantizeNode: fresh(`${weight}_DequantizeLinear`),
      },
    });
  });
  return { plans, skipped, zeroName: fresh('cairn/quantization/zero') };
}

/**
 * The Relu or Clip that keeps onnxruntime 1.30 from fusing `node` (see the header): the node's
 * output has exactly one reader, a Relu/Clip, whose output has exactly one reader and is not a
 * graph output. Only the Clip form with bounds as inputs (opset ≥ 11) is rewritten.
 */
function blockingActivation(
  node: OnnxTypes.INodeProto,
  label: string,
  nodes: OnnxTypes.INodeProto[],
  readers: Map<string, { nodeIndex: number }[]>,
  graphOutputs: Set<string>,
): ActivationPlan | undefined {
  // onnxruntime counts edges to nodes only: being a graph output as well does not lift the block.
  const output = node.output?.[0];
  if (!output || (node.output?.length ?? 0) !== 1) return undefined;
  const next = readers.get(output) ?? [];
  if (next.length !== 1) return undefined;
  const nodeIndex = next[0]!.nodeIndex;
  const act = nodes[nodeIndex]!;
  if (!isDefaultDomain(act.domain) || (act.opType !== 'Relu' && act.opType !== 'Clip')) return undefined;
  if (act.input?.[0] !== output || (act.output?.length ?? 0) !== 1) return undefined;
  if (act.opType === 'Clip' && (act.attribute ?? []).some((a) => a.name === 'min' || a.name === 'max')) return undefined;
  const actOutput = act.output![0]!;
  if (graphOutputs.has(actOutput) || (readers.get(actOutput) ?? []).length !== 1) return undefined;
  return { nodeIndex, node: act, entry: { node: nodeLabel(act, nodeIndex), from: act.opType, to: activationReplacement(act), after: label } };
}

function activationReplacement(node: OnnxTypes.INodeProto): string {
  if (node.opType === 'Relu') return 'Max';
  const [, min, max] = node.input ?? [];
  return min && max ? 'Max+Min' : min ? 'Max' : max ? 'Min' : 'Identity';
}

function isCandidate(node: OnnxTypes.INodeProto): boolean {
  return isDefaultDomain(node.domain) && (node.opType === 'MatMul' || node.opType === 'Gemm');
}

/** MatMul/Gemm nodes at any depth below a subgraph attribute, all left in float. */
function listSubgraphCandidates(graph: OnnxTypes.IGraphProto, path: string, skipped: SkippedWeight[]): void {
  forEachNodeDeep(graph, (node, nodePath) => {
    if (!isCandidate(node)) return;
    const weight = node.input?.[1];
    skipped.push({
      node: `${path}/${nodePath}`,
      ...(weight ? { weight } : {}),
      code: 'in_subgraph',
      reason: 'the node is inside a subgraph (If/Loop/Scan body), which the quantizer does not rewrite',
    });
  });
}

function gemmAttributes(node: OnnxTypes.INodeProto): { transA: number; transB: number; alpha: number; beta: number } {
  const attr = (name: string): OnnxTypes.IAttributeProto | undefined => node.attribute?.find((a) => a.name === name);
  // beta only scales C: without a C input it has no effect, and onnxruntime fuses either way.
  const hasC = Boolean(node.input?.[2]);
  return {
    transA: toNumber(attr('transA')?.i),
    transB: toNumber(attr('transB')?.i),
    alpha: attr('alpha')?.f ?? 1,
    beta: hasC ? (attr('beta')?.f ?? 1) : 1,
  };
}

function checkExclude(graph: OnnxTypes.IGraphProto, exclude: Set<string>): void {
  if (exclude.size === 0) return;
  const known = new Set<string>();
  (graph.node ?? []).forEach((n, i) => {
    known.add(nodeLabel(n, i));
    for (const input of n.input ?? []) known.add(input);
  });
  const unknown = [...exclude].filter((name) => !known.has(name));
  if (unknown.length > 0) {
    throw new QuantizationError('CAIRN_QUANT_BAD_OPTIONS', `exclude names no node or weight of the main graph: ${unknown.join(', ')}`, unknown.map((u) => `unknown name '${u}'`));
  }
}

/** Names not yet used anywhere in the model; `base`, then `base_1`, `base_2`… */
function freshNamer(used: Set<string>): (base: string) => string {
  return (base) => {
    let name = base;
    for (let i = 1; used.has(name); i++) name = `${base}_${i}`;
    used.add(name);
    return name;
  };
}

function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

/**
 * Symmetric per-output-channel quantization of a row-major `[k, n]` weight: column j gets
 * scale max|W[:, j]| / 127 (in float32, as stored) and q = round_half_even(w / scale), so
 * dequantization is q × scale as DequantizeLinear computes it. An all-zero column gets scale 1
 * (a zero scale is legal but needless trouble for consumers that divide by it).
 */
export function quantizeColumns(values: Float32Array, k: number, n: number): { q: Int8Array; scales: Float32Array } {
  const scales = new Float32Array(n);
  for (let j = 0; j < n; j++) {
    let max = 0;
    for (let i = 0; i < k; i++) max = Math.max(max, Math.abs(values[i * n + j]!));
    const scale = Math.fround(max / INT8_MAX);
    scales[j] = scale > 0 ? scale : 1;
  }
  const q = new Int8Array(k * n);
  for (let i = 0; i < k; i++) {
    for (let j = 0; j < n; j++) {
      const v = roundHalfEven(values[i * n + j]! / scales[j]!);
      q[i * n + j] = Math.max(-INT8_MAX, Math.min(INT8_MAX, v));
    }
  }
  return { q, scales };
}

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ---------------------------------------------------------------------------------------------
// Writing (wire-level splice: untouched fields keep their bytes)

interface ModelEdits {
  /** Name of the scalar 0 that rewritten Relus compare with. */
  zeroName: string;
  opset: number | undefined;
  irVersion: number | undefined;
  dropInputs: Set<string>;
  metadata: string;
}

function writeModel(bytes: Uint8Array, decoded: DecodedModel, plans: WeightPlan[], edits: ModelEdits): Uint8Array {
  const fields = readWireFields(bytes, 'ModelProto');
  const graphFields = fields.filter((f) => f.number === ModelField.graph);
  if (graphFields.length !== 1) throw new QuantizationError('CAIRN_QUANT_MALFORMED_MODEL', `the ModelProto has ${graphFields.length} graph fields, expected one`);
  const metadataEntry = lengthDelimitedField(ModelField.metadataProps, onnx.StringStringEntryProto.encode({ key: QUANTIZATION_METADATA_KEY, value: edits.metadata }).finish());
  const lastMetadata = fields.reduce((last, f, i) => (f.number === ModelField.metadataProps ? i : last), -1);
  // Without metadata yet, the entry goes where onnx's own serializer puts field 14: before higher field numbers.
  const metadataAt = lastMetadata >= 0 ? lastMetadata + 1 : insertionIndex(fields, ModelField.metadataProps);

  const parts: Uint8Array[] = [];
  let sawIrVersion = false;
  fields.forEach((field, i) => {
    if (i === metadataAt) parts.push(metadataEntry);
    switch (field.number) {
      case ModelField.irVersion:
        sawIrVersion = true;
        parts.push(edits.irVersion !== undefined ? varintField(ModelField.irVersion, edits.irVersion) : fieldBytes(bytes, field));
        return;
      case ModelField.graph:
        parts.push(lengthDelimitedField(ModelField.graph, writeGraph(payloadBytes(bytes, field), decoded.graph!, plans, edits)));
        return;
      case ModelField.opsetImport: {
        const entry = onnx.OperatorSetIdProto.decode(payloadBytes(bytes, field));
        if (edits.opset !== undefined && isDefaultDomain(entry.domain)) {
          parts.push(lengthDelimitedField(ModelField.opsetImport, onnx.OperatorSetIdProto.encode({ domain: entry.domain, version: edits.opset }).finish()));
        } else {
          parts.push(fieldBytes(bytes, field));
        }
        return;
      }
      case ModelField.metadataProps: {
        const entry = onnx.StringStringEntryProto.decode(payloadBytes(bytes, field));
        if (entry.key !== QUANTIZATION_METADATA_KEY) parts.push(fieldBytes(bytes, field));
        return;
      }
      default:
        parts.push(fieldBytes(bytes, field));
    }
  });
  if (metadataAt >= fields.length) parts.push(metadataEntry);
  if (!sawIrVersion) throw new QuantizationError('CAIRN_QUANT_MALFORMED_MODEL', 'the ModelProto has no ir_version field');
  return concatBytes(parts);
}

/** Index of the first field numbered above `number` (fields.length when there is none). */
function insertionIndex(fields: WireField[], number: number): number {
  const i = fields.findIndex((f) => f.number > number);
  return i < 0 ? fields.length : i;
}

function writeGraph(bytes: Uint8Array, graph: OnnxTypes.IGraphProto, plans: WeightPlan[], edits: ModelEdits): Uint8Array {
  const byNode = new Map<number, WeightPlan>(plans.map((p) => [p.nodeIndex, p]));
  const byInitializer = new Map<number, WeightPlan>(plans.map((p) => [p.initializerIndex, p]));
  const activations = new Map<number, ActivationPlan>(plans.flatMap((p) => (p.activation ? [[p.activation.nodeIndex, p.activation] as const] : [])));
  const needsZero = [...activations.values()].some((a) => a.node.opType === 'Relu');
  const replaced = new Set(plans.map((p) => p.entry.weight));
  const fields = readWireFields(bytes, 'GraphProto');
  const lastInitializer = fields.reduce((last, f, i) => (f.number === GraphField.initializer ? i : last), -1);
  const node = (proto: OnnxTypes.INodeProto): Uint8Array => lengthDelimitedField(GraphField.node, onnx.NodeProto.encode(proto).finish());
  const tensor = (proto: OnnxTypes.ITensorProto): Uint8Array => lengthDelimitedField(GraphField.initializer, onnx.TensorProto.encode(proto).finish());
  let nodeIndex = 0;
  let initializerIndex = 0;
  const parts: Uint8Array[] = [];
  fields.forEach((field, i) => {
    const raw = fieldBytes(bytes, field);
    switch (field.number) {
      case GraphField.node: {
        const index = nodeIndex++;
        const plan = byNode.get(index);
        const activation = activations.get(index);
        if (plan) {
          // Right before its consumer, so the node list stays topologically sorted.
          parts.push(node(dequantizeNode(plan)), lengthDelimitedField(GraphField.node, rewriteConsumer(payloadBytes(bytes, field), plan)));
        } else if (activation) {
          parts.push(...rewriteActivation(payloadBytes(bytes, field), activation, edits.zeroName).map((p) => lengthDelimitedField(GraphField.node, p)));
        } else {
          parts.push(raw);
        }
        break;
      }
      case GraphField.initializer: {
        const plan = byInitializer.get(initializerIndex++);
        if (plan) {
          const { entry, q, scales } = plan;
          parts.push(tensor(int8TensorProto(entry.quantized, entry.shape, q)), tensor({ name: entry.scale, dataType: DataType.FLOAT, dims: [entry.shape[1]], rawData: float32Bytes(scales) }));
        } else {
          parts.push(raw);
        }
        if (i === lastInitializer && needsZero) parts.push(tensor({ name: edits.zeroName, dataType: DataType.FLOAT, dims: [], rawData: float32Bytes(new Float32Array([0])) }));
        break;
      }
      case GraphField.input:
      case GraphField.valueInfo: {
        // The float weight no longer exists: its declaration (IR < 4 input, or a value_info) goes too.
        const name = onnx.ValueInfoProto.decode(payloadBytes(bytes, field)).name;
        const drop = field.number === GraphField.valueInfo ? replaced.has(name) : edits.dropInputs.has(name);
        if (!drop) parts.push(raw);
        break;
      }
      default:
        parts.push(raw);
    }
  });
  if (nodeIndex !== (graph.node?.length ?? 0) || initializerIndex !== (graph.initializer?.length ?? 0)) {
    throw new QuantizationError('CAIRN_QUANT_MALFORMED_MODEL', 'the GraphProto could not be read consistently (node or initializer count differs between decoders)');
  }
  return concatBytes(parts);
}

/**
 * The NodeProto payload(s) replacing a blocking Relu/Clip (see the header). A Relu keeps every
 * field but its op type, and gains the scalar 0 as second input; a Clip becomes Max and/or Min
 * on its own bounds, the last node writing the Clip's output.
 */
function rewriteActivation(bytes: Uint8Array, { node, intermediate }: ActivationPlan, zeroName: string): Uint8Array[] {
  if (node.opType === 'Relu') {
    const parts: Uint8Array[] = [];
    for (const field of readWireFields(bytes, 'NodeProto')) {
      if (field.number === NodeField.opType) {
        parts.push(stringField(NodeField.opType, 'Max'));
      } else {
        parts.push(fieldBytes(bytes, field));
        if (field.number === NodeField.input) parts.push(stringField(NodeField.input, zeroName));
      }
    }
    return [concatBytes(parts)];
  }
  const [x = '', min, max] = node.input ?? [];
  const output = node.output![0]!;
  const name = node.name ?? '';
  const part = (suffix: string): string => (name ? `${name}/${suffix}` : '');
  const encode = (proto: OnnxTypes.INodeProto): Uint8Array => onnx.NodeProto.encode({ ...proto, ...(node.domain ? { domain: node.domain } : {}) }).finish();
  if (min && max && intermediate) {
    return [encode({ name: part('max'), opType: 'Max', input: [x, min], output: [intermediate] }), encode({ name: part('min'), opType: 'Min', input: [intermediate, max], output: [output] })];
  }
  if (min) return [encode({ name, opType: 'Max', input: [x, min], output: [output] })];
  if (max) return [encode({ name, opType: 'Min', input: [x, max], output: [output] })];
  return [encode({ name, opType: 'Identity', input: [x], output: [output] })];
}

function dequantizeNode({ entry }: WeightPlan): OnnxTypes.INodeProto {
  return {
    name: entry.dequantizeNode,
    opType: 'DequantizeLinear',
    input: [entry.quantized, entry.scale],
    output: [entry.dequantized],
    attribute: [{ name: 'axis', type: AttributeType.INT, i: 1 }],
  };
}

/** The consumer with B renamed to the dequantized weight (and transB = 0); other fields keep their bytes. */
function rewriteConsumer(bytes: Uint8Array, plan: WeightPlan): Uint8Array {
  const parts: Uint8Array[] = [];
  let inputIndex = 0;
  for (const field of readWireFields(bytes, 'NodeProto')) {
    if (field.number === NodeField.input && inputIndex++ === 1) {
      parts.push(stringField(NodeField.input, plan.entry.dequantized));
    } else if (field.number === NodeField.attribute && plan.resetTransB && onnx.AttributeProto.decode(payloadBytes(bytes, field)).name === 'transB') {
      parts.push(lengthDelimitedField(NodeField.attribute, onnx.AttributeProto.encode({ name: 'transB', type: AttributeType.INT, i: 0 }).finish()));
    } else {
      parts.push(fieldBytes(bytes, field));
    }
  }
  return concatBytes(parts);
}
