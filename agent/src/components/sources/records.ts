/**
 * Input records: what the local API, stdin and a local MQTT topic hand to the pipeline. A record
 * is one JSON object that says what it holds by its keys:
 *
 *   {"inputs": {"<input>": {"dims": [1, 19], "data": [...]}}}      tensors, any model
 *   {"features": [0.12, ...]}                                      one feature vector for a
 *                                                                   model with one [1, n] input
 *   {"samples": [...1024 numbers], "sampleRateHz": 12800,          a raw vibration window; the
 *    "temperatureC": 41.5}                                         agent extracts the features
 *                                                                   with shared/features (only
 *                                                                   for a `cairn.vibration` model)
 *
 * Every kind may carry `"ts"` (epoch ms, when the data was measured; default: now), which the
 * maintenance rules use. Anything else is refused with a `RecordError` whose `reason` is one of
 * RECORD_REJECTIONS, so every source counts refusals the same way.
 */
import { Type } from 'typebox';
import {
  Compile,
  describeErrors,
  extractFeatures,
  FeatureInputError,
  FEATURE_COUNT,
  FEATURE_PIPELINE,
  type TensorSpecT,
} from '@cairn/shared';
import type { Feeds } from '../runtime/types.js';
import type { ServedModel } from '../active-model.js';

export const RECORD_REJECTIONS = [
  /** Not JSON. */
  'bad_json',
  /** Over the source's size bound. */
  'too_long',
  /** JSON, but none of the record kinds. */
  'unknown_format',
  /** A known kind with missing, extra or mistyped fields. */
  'bad_record',
  /** Tensors or features that do not fit the active model's inputs. */
  'bad_shape',
  /** Samples for a model that does not take the vibration features, or a window the pipeline cannot use. */
  'model_mismatch',
  /** Nothing is served yet. */
  'no_model',
  /** The runtime failed on a well-formed record. */
  'inference_failed',
  /** A source that cannot push back (MQTT) had a full queue. */
  'overloaded',
] as const;
export type RecordRejection = (typeof RECORD_REJECTIONS)[number];

export class RecordError extends Error {
  override readonly name = 'RecordError';
  constructor(
    readonly reason: RecordRejection,
    message: string,
  ) {
    super(message);
  }
}

const closed = { additionalProperties: false } as const;
const Ts = Type.Optional(Type.Integer({ minimum: 0, maximum: 8.64e15, description: 'epoch ms when the data was measured' }));
const TensorJson = Type.Object(
  {
    dims: Type.Array(Type.Integer({ minimum: 0, maximum: 2 ** 31 }), { maxItems: 8 }),
    data: Type.Array(Type.Number()),
  },
  closed,
);
const TensorsRecord = Type.Object(
  { inputs: Type.Record(Type.String({ minLength: 1, maxLength: 128 }), TensorJson, { minProperties: 1, maxProperties: 16 }), ts: Ts },
  closed,
);
const FeaturesRecord = Type.Object({ features: Type.Array(Type.Number(), { minItems: 1, maxItems: 65_536 }), ts: Ts }, closed);
const VibrationRecord = Type.Object(
  {
    samples: Type.Array(Type.Number(), { minItems: 1, maxItems: 1 << 20 }),
    sampleRateHz: Type.Number({ exclusiveMinimum: 0 }),
    temperatureC: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
    ts: Ts,
  },
  closed,
);
const kinds = {
  inputs: { kind: 'tensors', validator: Compile(TensorsRecord) },
  features: { kind: 'features', validator: Compile(FeaturesRecord) },
  samples: { kind: 'vibration', validator: Compile(VibrationRecord) },
} as const;

type TensorJsonT = { dims: number[]; data: number[] };
export type SourceRecord =
  | { kind: 'tensors'; inputs: Record<string, TensorJsonT>; ts?: number }
  | { kind: 'features'; features: number[]; ts?: number }
  | { kind: 'vibration'; samples: number[]; sampleRateHz: number; temperatureC?: number | null; ts?: number };

/** Parses and validates one record's text. Throws RecordError. */
export function parseRecord(text: string): SourceRecord {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new RecordError('bad_json', `not JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RecordError('unknown_format', 'a record is a JSON object holding "inputs", "features" or "samples"');
  }
  const key = (Object.keys(kinds) as Array<keyof typeof kinds>).find((k) => k in value);
  if (!key) throw new RecordError('unknown_format', `a record holds "inputs", "features" or "samples"; got keys ${Object.keys(value).slice(0, 8).join(', ') || '(none)'}`);
  const { kind, validator } = kinds[key];
  if (!validator.Check(value)) throw new RecordError('bad_record', `${kind} record: ${describeErrors(validator, value)}`);
  return { kind, ...(value as object) } as SourceRecord;
}

/** The inputs the served model takes: the session's own signature, else the manifest's. */
export function modelInputs(model: ServedModel): TensorSpecT[] {
  return model.session.inputs.length > 0 ? model.session.inputs : model.bundle.manifest.inputs;
}

/** Whether the served model takes the `cairn.vibration` features as its only [.., FEATURE_COUNT] input. */
export function takesVibrationFeatures(model: ServedModel): boolean {
  const features = model.bundle.manifest.features;
  const inputs = modelInputs(model);
  const input = inputs[0];
  return (
    inputs.length === 1 &&
    input !== undefined &&
    features?.name === FEATURE_PIPELINE.name &&
    features.version === FEATURE_PIPELINE.version &&
    input.dims[input.dims.length - 1] === FEATURE_COUNT
  );
}

/** The model's feeds for a record. Throws RecordError (bad_shape, model_mismatch). */
export function recordFeeds(record: SourceRecord, model: ServedModel): Feeds {
  const inputs = modelInputs(model);
  switch (record.kind) {
    case 'tensors':
      return tensorFeeds(record.inputs, inputs);
    case 'features':
      return featureFeeds(Float32Array.from(record.features), inputs);
    case 'vibration': {
      if (!takesVibrationFeatures(model)) {
        const { name, version } = model.bundle.manifest;
        throw new RecordError('model_mismatch', `${name}@${version} does not take the ${FEATURE_PIPELINE.name} features; send "features" or "inputs" instead of raw samples`);
      }
      try {
        const data = extractFeatures(record.samples, { sampleRateHz: record.sampleRateHz, temperatureC: record.temperatureC ?? null });
        return featureFeeds(data, inputs);
      } catch (err) {
        if (err instanceof FeatureInputError) throw new RecordError('model_mismatch', err.message);
        throw err;
      }
    }
  }
}

/** One feature vector as a [1, n] tensor for a single-input model. */
function featureFeeds(data: Float32Array, inputs: TensorSpecT[]): Feeds {
  const input = inputs[0];
  if (inputs.length !== 1 || !input) throw new RecordError('bad_shape', `the model takes ${inputs.length} inputs; send "inputs" with every tensor`);
  return tensorFeeds({ [input.name]: { dims: [1, data.length], data: Array.from(data) } }, inputs);
}

/** Checks tensors against the model's inputs: every input present, nothing else, shapes that fit. */
export function tensorFeeds(tensors: Record<string, TensorJsonT>, specs: TensorSpecT[]): Feeds {
  const feeds: Feeds = {};
  const expected = new Set(specs.map((s) => s.name));
  for (const name of Object.keys(tensors)) {
    if (!expected.has(name)) throw new RecordError('bad_shape', `the model has no input '${name}' (inputs: ${[...expected].join(', ')})`);
  }
  for (const spec of specs) {
    const tensor = tensors[spec.name];
    if (!tensor) throw new RecordError('bad_shape', `input '${spec.name}' is missing`);
    if (tensor.dims.length !== spec.dims.length) {
      throw new RecordError('bad_shape', `input '${spec.name}' must have ${spec.dims.length} dimensions [${spec.dims.join(', ')}], got [${tensor.dims.join(', ')}]`);
    }
    spec.dims.forEach((d, i) => {
      if (typeof d === 'number' && d > 0 && tensor.dims[i] !== d) {
        throw new RecordError('bad_shape', `input '${spec.name}' dimension ${i} must be ${d}, got ${tensor.dims[i]}`);
      }
    });
    const elements = tensor.dims.reduce((n, d) => n * d, 1);
    if (elements !== tensor.data.length) {
      throw new RecordError('bad_shape', `input '${spec.name}' has dims [${tensor.dims.join(', ')}] (${elements} values) but ${tensor.data.length} values`);
    }
    if (elements === 0) throw new RecordError('bad_shape', `input '${spec.name}' is empty`);
    feeds[spec.name] = { dims: tensor.dims, data: Float32Array.from(tensor.data) };
  }
  return feeds;
}
