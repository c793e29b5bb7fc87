/**
 * The health policy a bundle carries in its manifest (`health` section, schema
 * `cairn.health/v1`): the golden probes a candidate must pass before it serves, and the
 * thresholds its trial on live traffic is judged by (DESIGN §4). Every field is optional; what
 * a manifest leaves out comes from the defaults below (which an agent's configuration may
 * replace), so a model with no health section still gets a trial.
 *
 * The hub validates the section when a bundle is published, and the agent again before it uses
 * it (a malformed section fails the deployment with reason `health_policy`).
 */
import { Type, type Static } from 'typebox';
import { Compile, describeErrors } from '../protocol/payloads.js';
import type { TensorSpecT } from '../protocol/schemas.js';

export const HEALTH_SCHEMA = 'cairn.health/v1';

const Finite = Type.Number({ minimum: -3.4e38, maximum: 3.4e38 });
const Probe = Type.Object(
  {
    /** The model's single input, flattened row-major, for a batch of one. */
    input: Type.Array(Finite, { minItems: 1, maxItems: 65_536 }),
    /** The first output, flattened, that the candidate must reproduce within `probeTolerance`. */
    expected: Type.Optional(Type.Array(Finite, { minItems: 1, maxItems: 65_536 })),
  },
  { additionalProperties: false },
);

/** The `trial` part of a health section (also the shape of an agent's configured defaults). */
export const TrialSection = Type.Object(
  {
    /** How long the candidate serves live traffic before it can be committed. */
    durationMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000 })),
    /** Inferences the trial must see before it commits (and before rates are judged). */
    minInferences: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** A trial that has not seen `minInferences` by this time commits with what it saw. */
    maxDurationMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 604_800_000 })),
    /** Failed inferences / all inferences above this fails the trial. */
    maxErrorRate: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
    /** Candidate compute time (onnxruntime's `run` in the worker) above this many times the standby's on the same traffic (median; p95 with enough samples) fails the trial … */
    maxLatencyRatio: Type.Optional(Type.Number({ minimum: 1, maximum: 10_000 })),
    /** … unless the candidate's compute time is at most this (sub-millisecond noise is not a regression). */
    latencyFloorMs: Type.Optional(Type.Number({ minimum: 0, maximum: 3_600_000 })),
    /** An absolute p95 budget for the compute time, judged also when there is no standby to compare against. */
    maxLatencyP95Ms: Type.Optional(Type.Number({ minimum: 0, maximum: 3_600_000 })),
    /** NaN or Infinity outputs tolerated during the trial. */
    maxNonFinite: Type.Optional(Type.Integer({ minimum: 0 })),
    /** Fail when the outputs stay constant over the trial while the standby's answers to the same inputs vary. */
    detectCollapse: Type.Optional(Type.Boolean()),
    /** One in this many trial requests also runs on the standby, as the latency baseline (every one until it has 20 samples). */
    shadowEvery: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000 })),
  },
  { additionalProperties: false },
);

export const HealthSection = Type.Object(
  {
    schema: Type.Literal(HEALTH_SCHEMA),
    probes: Type.Optional(Type.Array(Probe, { maxItems: 256 })),
    /** Largest absolute difference allowed between a probe's output and its `expected`. */
    probeTolerance: Type.Optional(Type.Number({ minimum: 0, maximum: 1e6 })),
    /** Largest compute time (onnxruntime's `run` in the worker, without queueing) one probe inference may take. */
    probeLatencyMs: Type.Optional(Type.Number({ minimum: 0, maximum: 3_600_000 })),
    trial: Type.Optional(TrialSection),
  },
  { additionalProperties: false },
);

export type HealthSectionT = Static<typeof HealthSection>;
export type TrialPolicyT = Required<Omit<Static<typeof TrialSection>, 'maxLatencyP95Ms'>> & { maxLatencyP95Ms: number | null };
export interface HealthPolicy {
  probes: Static<typeof Probe>[];
  probeTolerance: number;
  probeLatencyMs: number;
  trial: TrialPolicyT;
}

/** What applies where a manifest is silent. */
export const DEFAULT_HEALTH_POLICY: Readonly<HealthPolicy> = Object.freeze({
  probes: [],
  probeTolerance: 0.02,
  probeLatencyMs: 250,
  trial: Object.freeze({
    durationMs: 30_000,
    minInferences: 20,
    maxDurationMs: 600_000,
    maxErrorRate: 0.05,
    maxLatencyRatio: 3,
    latencyFloorMs: 1,
    maxLatencyP95Ms: null,
    maxNonFinite: 0,
    detectCollapse: true,
    shadowEvery: 4,
  }),
});

export class HealthPolicyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HealthPolicyError';
  }
}

const validator = Compile(HealthSection);

/**
 * The policy a manifest's `health` section asks for, completed from `defaults`. Throws a
 * HealthPolicyError naming what is wrong: a section that does not match the schema, or a probe
 * that does not fit the model's signature (probes need exactly one input with fixed dimensions
 * apart from a leading batch dimension).
 */
export function resolveHealthPolicy(
  section: Record<string, unknown> | undefined,
  signature: { inputs: TensorSpecT[]; outputs: TensorSpecT[] },
  defaults: Readonly<HealthPolicy> = DEFAULT_HEALTH_POLICY,
): HealthPolicy {
  if (section === undefined) return { ...defaults, probes: [], trial: { ...defaults.trial } };
  if (!validator.Check(section)) throw new HealthPolicyError(`the health section does not match ${HEALTH_SCHEMA}: ${describeErrors(validator, section)}`);
  const value = section as HealthSectionT;
  const probes = value.probes ?? [];
  if (probes.length > 0) {
    const inputSize = rowSize(signature.inputs, 'input');
    const outputSize = signature.outputs.length > 0 && fixedRow(signature.outputs[0]!) ? rowSize(signature.outputs, 'output') : null;
    probes.forEach((probe, i) => {
      if (probe.input.length !== inputSize) throw new HealthPolicyError(`probe ${i} has ${probe.input.length} input values, the model's input takes ${inputSize}`);
      if (probe.expected && outputSize !== null && probe.expected.length !== outputSize)
        throw new HealthPolicyError(`probe ${i} expects ${probe.expected.length} output values, the model's first output has ${outputSize}`);
    });
  }
  return {
    probes,
    probeTolerance: value.probeTolerance ?? defaults.probeTolerance,
    probeLatencyMs: value.probeLatencyMs ?? defaults.probeLatencyMs,
    trial: { ...defaults.trial, ...value.trial },
  };
}

function fixedRow(spec: TensorSpecT): boolean {
  return spec.dims.slice(1).every((d) => typeof d === 'number' && d > 0);
}

/** Values in one batch row of the first tensor (leading symbolic or 1 dimension = batch). */
function rowSize(specs: TensorSpecT[], what: 'input' | 'output'): number {
  if (what === 'input' && specs.length !== 1) throw new HealthPolicyError(`probes need a model with exactly one input, this one has ${specs.length}`);
  const spec = specs[0]!;
  const dims = spec.dims.slice(typeof spec.dims[0] === 'string' || spec.dims[0] === 1 ? 1 : 0);
  if (dims.some((d) => typeof d !== 'number' || d <= 0)) throw new HealthPolicyError(`probes need fixed dimensions after the batch dimension; the model's ${what} "${spec.name}" is [${spec.dims.join(', ')}]`);
  return (dims as number[]).reduce((n, d) => n * d, 1);
}
