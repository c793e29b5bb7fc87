/**
 * Small helpers for reading and rewriting ONNX ModelProtos that were not necessarily written by
 * Cairn: decoding with onnx-proto, the protobuf wire format for splicing, tensor conversion,
 * and the ai.onnx opset history the quantizer needs before it raises a model's opset.
 *
 * Why splice at the wire level: onnx-proto 8.0.1 knows the ONNX schema of IR version 8. A model
 * written by a newer exporter can carry fields it does not know (node and graph metadata_props,
 * overloads, device configurations…), and protobufjs drops unknown fields when it decodes, so
 * decode → edit → encode would silently lose them. The quantizer therefore decodes only to
 * analyse, and writes its output by copying every field it does not change as the original
 * bytes (`readWireFields`), encoding only what it adds or replaces.
 */
import onnxProto from 'onnx-proto';
import type { onnx as OnnxTypes } from 'onnx-proto';

const { onnx } = onnxProto;

/** TensorProto.DataType values used here (onnx.proto). */
export const DataType = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, BOOL: 9, FLOAT16: 10, DOUBLE: 11, BFLOAT16: 16 } as const;
const DATA_TYPE_NAMES: Record<number, string> = {
  0: 'UNDEFINED', 1: 'FLOAT', 2: 'UINT8', 3: 'INT8', 4: 'UINT16', 5: 'INT16', 6: 'INT32', 7: 'INT64', 8: 'STRING', 9: 'BOOL',
  10: 'FLOAT16', 11: 'DOUBLE', 12: 'UINT32', 13: 'UINT64', 14: 'COMPLEX64', 15: 'COMPLEX128', 16: 'BFLOAT16',
  17: 'FLOAT8E4M3FN', 18: 'FLOAT8E4M3FNUZ', 19: 'FLOAT8E5M2', 20: 'FLOAT8E5M2FNUZ', 21: 'UINT4', 22: 'INT4',
};
/** AttributeProto.AttributeType values used here. */
export const AttributeType = { FLOAT: 1, INT: 2, GRAPH: 5, GRAPHS: 10 } as const;

/** Field numbers of onnx.proto messages the quantizer splices. */
export const ModelField = { irVersion: 1, graph: 7, opsetImport: 8, metadataProps: 14 } as const;
export const GraphField = { node: 1, initializer: 5, input: 11, output: 12, valueInfo: 13 } as const;
export const NodeField = { input: 1, output: 2, name: 3, opType: 4, attribute: 5 } as const;

export type DecodedModel = OnnxTypes.ModelProto;

/** The model's bytes are not a readable ONNX ModelProto; the message says what is wrong. */
export class OnnxFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OnnxFormatError';
  }
}

export function dataTypeName(dataType: number | null | undefined): string {
  return DATA_TYPE_NAMES[dataType ?? 0] ?? `type ${dataType}`;
}

/** int64 fields decode as `Long` objects (the `long` package is installed) or numbers. */
export function toNumber(value: number | { toNumber(): number } | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

/** The empty domain and 'ai.onnx' both name the default operator set. */
export function isDefaultDomain(domain: string | null | undefined): boolean {
  return !domain || domain === 'ai.onnx';
}

/**
 * Decodes and checks the minimum every later step relies on: a graph, an IR version, and
 * initializers whose stored data agrees with their dims. Throws OnnxFormatError otherwise.
 */
export function decodeModel(bytes: Uint8Array): DecodedModel {
  if (!(bytes instanceof Uint8Array)) throw new OnnxFormatError('the model must be given as a Uint8Array');
  if (bytes.length === 0) throw new OnnxFormatError('the model file is empty');
  let model: DecodedModel;
  try {
    // The wire reader is stricter than protobufjs about truncation and unknown wire types.
    readWireFields(bytes, 'the ModelProto');
    model = onnx.ModelProto.decode(bytes);
  } catch (error) {
    throw new OnnxFormatError(`not a readable ONNX model: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!model.graph) throw new OnnxFormatError('not an ONNX model: the ModelProto has no graph');
  if (toNumber(model.irVersion) <= 0) throw new OnnxFormatError('not an ONNX model: ir_version is missing');
  return model;
}

/** The version of the default (ai.onnx) operator set the model imports, or undefined. */
export function defaultOpsetVersion(model: DecodedModel): number | undefined {
  const entry = model.opsetImport.find((o) => isDefaultDomain(o.domain));
  return entry ? toNumber(entry.version) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Protobuf wire format

export interface WireField {
  /** Field number. */
  number: number;
  /** 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32. */
  wireType: number;
  /** The whole field, tag included: copying `bytes.subarray(start, end)` reproduces it exactly. */
  start: number;
  end: number;
  /** For length-delimited fields, where the payload starts (it ends at `end`). */
  payloadStart: number;
}

/**
 * Splits one message into its top-level fields without interpreting them. Throws
 * OnnxFormatError on truncation, field number 0 or the deprecated group wire types.
 */
export function readWireFields(bytes: Uint8Array, what: string): WireField[] {
  const fields: WireField[] = [];
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let factor = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= bytes.length) throw new OnnxFormatError(`${what} is truncated (a varint runs past the end at byte ${pos})`);
      const byte = bytes[pos++]!;
      result += (byte & 0x7f) * factor;
      if (byte < 0x80) return result;
      factor *= 128;
    }
    throw new OnnxFormatError(`${what} is malformed (a varint longer than 10 bytes at byte ${pos})`);
  };
  while (pos < bytes.length) {
    const start = pos;
    const tag = varint();
    const number = Math.floor(tag / 8);
    const wireType = tag % 8;
    if (number === 0) throw new OnnxFormatError(`${what} is malformed (field number 0 at byte ${start})`);
    let payloadStart = pos;
    switch (wireType) {
      case 0:
        varint();
        break;
      case 1:
        pos += 8;
        break;
      case 2: {
        const length = varint();
        payloadStart = pos;
        pos += length;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        throw new OnnxFormatError(`${what} is malformed (unsupported wire type ${wireType} for field ${number} at byte ${start})`);
    }
    if (pos > bytes.length) throw new OnnxFormatError(`${what} is truncated (field ${number} at byte ${start} needs ${pos - bytes.length} more bytes)`);
    fields.push({ number, wireType, start, end: pos, payloadStart });
  }
  return fields;
}

export function fieldBytes(bytes: Uint8Array, field: WireField): Uint8Array {
  return bytes.subarray(field.start, field.end);
}

export function payloadBytes(bytes: Uint8Array, field: WireField): Uint8Array {
  return bytes.subarray(field.payloadStart, field.end);
}

function encodeVarint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

export function lengthDelimitedField(number: number, payload: Uint8Array): Uint8Array {
  const head = [...encodeVarint(number * 8 + 2), ...encodeVarint(payload.length)];
  const out = new Uint8Array(head.length + payload.length);
  out.set(head, 0);
  out.set(payload, head.length);
  return out;
}

export function varintField(number: number, value: number): Uint8Array {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`varint fields here are non-negative safe integers, got ${value}`);
  return Uint8Array.from([...encodeVarint(number * 8), ...encodeVarint(value)]);
}

export function stringField(number: number, value: string): Uint8Array {
  return lengthDelimitedField(number, new TextEncoder().encode(value));
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tensors

/** Little-endian float32 bytes whatever the host's byte order (TensorProto raw_data layout). */
export function float32Bytes(values: Float32Array): Uint8Array {
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  for (let i = 0; i < values.length; i++) view.setFloat32(i * 4, values[i]!, true);
  return raw;
}

export function int8TensorProto(name: string, dims: number[], values: Int8Array): OnnxTypes.ITensorProto {
  return { name, dataType: DataType.INT8, dims, rawData: new Uint8Array(values.buffer, values.byteOffset, values.byteLength).slice() };
}

export function tensorDims(tensor: OnnxTypes.ITensorProto): number[] {
  return (tensor.dims ?? []).map((d) => toNumber(d));
}

/**
 * The values of a FLOAT initializer stored in the file itself (rawData or float_data).
 * Throws OnnxFormatError when the stored data disagrees with the dims.
 */
export function readFloatTensor(tensor: OnnxTypes.ITensorProto): Float32Array {
  const count = tensorDims(tensor).reduce((a, b) => a * b, 1);
  const raw = tensor.rawData;
  if (raw && raw.length > 0) {
    if (raw.length !== count * 4) throw new OnnxFormatError(`initializer '${tensor.name}' has ${raw.length} bytes of raw data, expected ${count} float32 values (${count * 4} bytes)`);
    const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    return Float32Array.from({ length: count }, (_, i) => view.getFloat32(i * 4, true));
  }
  const floats = tensor.floatData ?? [];
  if (floats.length !== count) throw new OnnxFormatError(`initializer '${tensor.name}' has ${floats.length} float_data values, expected ${count}`);
  return Float32Array.from(floats);
}

/** True when the tensor's data lives outside the model file (TensorProto.data_location = EXTERNAL). */
export function hasExternalData(tensor: OnnxTypes.ITensorProto): boolean {
  return tensor.dataLocation === 1 || (tensor.externalData?.length ?? 0) > 0;
}

// ---------------------------------------------------------------------------------------------
// Graph traversal

/** The subgraphs held by a node's attributes (If branches, Loop and Scan bodies), with their attribute names. */
export function subgraphsOf(node: OnnxTypes.INodeProto): { attribute: string; graph: OnnxTypes.IGraphProto }[] {
  const out: { attribute: string; graph: OnnxTypes.IGraphProto }[] = [];
  for (const attr of node.attribute ?? []) {
    if (attr.g) out.push({ attribute: attr.name ?? '', graph: attr.g });
    (attr.graphs ?? []).forEach((graph, i) => out.push({ attribute: `${attr.name ?? ''}[${i}]`, graph }));
  }
  return out;
}

/**
 * Names a subgraph (and its own subgraphs) reads from enclosing scopes: every node input that the
 * subgraph does not define itself as an input, initializer or node output. ONNX lets subgraphs
 * read outer values by name, so these count as uses of the outer tensor.
 */
export function outerScopeReads(graph: OnnxTypes.IGraphProto): string[] {
  const defined = new Set<string>();
  for (const v of graph.input ?? []) if (v.name) defined.add(v.name);
  for (const t of graph.initializer ?? []) if (t.name) defined.add(t.name);
  for (const t of graph.sparseInitializer ?? []) if (t.values?.name) defined.add(t.values.name);
  for (const n of graph.node ?? []) for (const o of n.output ?? []) if (o) defined.add(o);
  const reads: string[] = [];
  for (const n of graph.node ?? []) {
    for (const i of n.input ?? []) if (i && !defined.has(i)) reads.push(i);
    for (const { graph: sub } of subgraphsOf(n)) for (const r of outerScopeReads(sub)) if (!defined.has(r)) reads.push(r);
  }
  for (const o of graph.output ?? []) if (o.name && !defined.has(o.name)) reads.push(o.name);
  return reads;
}

/** Every tensor and node name used anywhere in the graph and its subgraphs (for picking fresh names). */
export function collectNames(graph: OnnxTypes.IGraphProto, into = new Set<string>()): Set<string> {
  for (const v of [...(graph.input ?? []), ...(graph.output ?? []), ...(graph.valueInfo ?? [])]) if (v.name) into.add(v.name);
  for (const t of graph.initializer ?? []) if (t.name) into.add(t.name);
  for (const t of graph.sparseInitializer ?? []) if (t.values?.name) into.add(t.values.name);
  for (const n of graph.node ?? []) {
    if (n.name) into.add(n.name);
    for (const name of [...(n.input ?? []), ...(n.output ?? [])]) if (name) into.add(name);
    for (const { graph: sub } of subgraphsOf(n)) collectNames(sub, into);
  }
  return into;
}

/** Visits every node of the graph and of its subgraphs, depth first, with a readable path. */
export function forEachNodeDeep(
  graph: OnnxTypes.IGraphProto,
  visit: (node: OnnxTypes.INodeProto, path: string, depth: number) => void,
  path = '',
  depth = 0,
): void {
  (graph.node ?? []).forEach((node, index) => {
    const label = nodeLabel(node, index);
    visit(node, path ? `${path}/${label}` : label, depth);
    for (const { attribute, graph: sub } of subgraphsOf(node)) forEachNodeDeep(sub, visit, `${path ? `${path}/` : ''}${label}.${attribute}`, depth + 1);
  });
}

/** A node's name, or `OpType#index` for the many exporters that leave names empty. */
export function nodeLabel(node: OnnxTypes.INodeProto, index: number): string {
  return node.name || `${node.opType ?? '?'}#${index}`;
}

// ---------------------------------------------------------------------------------------------
// Opset history

/**
 * ai.onnx operators whose inputs, attributes or meaning changed at the listed opset versions
 * (8…13), so that a node written for an older opset is invalid or computes something else
 * when the model's import is raised past that version. Derived from the schema history of
 * onnx 1.12 (`onnx.defs.get_all_schemas_with_history()`: versions where inputs, outputs or
 * attributes changed other than by an optional addition with the old behaviour as default),
 * plus Softmax, LogSoftmax and Hardmax, whose axis semantics changed at 13 without a
 * signature change. Opsets below 7 (consumed_inputs, legacy broadcast attributes) are not
 * raised at all.
 */
const BREAKING_OPSET_CHANGES: Readonly<Record<string, readonly number[]>> = {
  BatchNormalization: [9],
  Clip: [11],
  Dropout: [12],
  Hardmax: [13],
  LogSoftmax: [13],
  Pad: [11],
  ReduceSum: [13],
  Resize: [11, 13],
  Scan: [9],
  Scatter: [11],
  Slice: [10],
  Softmax: [13],
  Split: [13],
  Squeeze: [13],
  TopK: [10],
  Unsqueeze: [13],
  Upsample: [9, 10],
};
/** The oldest opset from which raising the import is attempted at all. */
export const MIN_RAISABLE_OPSET = 7;

/**
 * Why the default-domain import of `model` cannot be raised from `from` to `to` without
 * converting nodes: one line per operator type that changed in between, or an empty list when
 * raising keeps every node's meaning. Nodes in subgraphs and in model-local functions count.
 */
export function opsetRaiseBlockers(model: DecodedModel, from: number, to: number): string[] {
  if (from < MIN_RAISABLE_OPSET) return [`opset ${from} predates ONNX's broadcasting rules (opset 7)`];
  const blockers = new Map<string, number[]>();
  const check = (node: OnnxTypes.INodeProto): void => {
    if (!isDefaultDomain(node.domain) || !node.opType) return;
    if (isSoftmaxOnLastAxis(node)) return;
    const changes = (BREAKING_OPSET_CHANGES[node.opType] ?? []).filter((v) => v > from && v <= to);
    if (changes.length > 0) blockers.set(node.opType, changes);
  };
  if (model.graph) forEachNodeDeep(model.graph, check);
  for (const fn of model.functions ?? []) for (const node of fn.node ?? []) check(node);
  return [...blockers].map(([op, versions]) => `${op} changed at opset ${versions.join(' and ')}`);
}

/** Softmax-family nodes with axis = -1 compute the same before and after opset 13. */
function isSoftmaxOnLastAxis(node: OnnxTypes.INodeProto): boolean {
  if (node.opType !== 'Softmax' && node.opType !== 'LogSoftmax' && node.opType !== 'Hardmax') return false;
  const axis = node.attribute?.find((a) => a.name === 'axis');
  return axis !== undefined && toNumber(axis.i) === -1;
}
