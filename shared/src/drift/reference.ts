/**
 * The drift reference stored in a bundle manifest's `driftReference` section: one quantile
 * histogram per input feature and one for the predicted class distribution, computed on the
 * training data. The agent's drift monitor compares live windows against it with PSI.
 */
import { Type } from 'typebox';
import { referenceHistogram, type ReferenceHistogram, DEFAULT_BINS } from './histogram.js';
import { Compile, describeErrors } from '../protocol/payloads.js';
import { FeatureName } from '../protocol/schemas.js';

export const DRIFT_SCHEMA = 'cairn.drift/v1';

/** PSI at which drift is reported as `warn` and `alert` when a reference names no thresholds (the usual 0.1 / 0.25 rule). */
export const DEFAULT_DRIFT_THRESHOLDS: Readonly<DriftThresholds> = Object.freeze({ warn: 0.1, alert: 0.25 });

export interface DriftThresholds {
  warn: number;
  alert: number;
}

export interface DriftReference {
  schema: 'cairn.drift/v1';
  bins: number;
  /** Reference rows the histograms were computed from. */
  count: number;
  features: ({ name: string } & ReferenceHistogram)[];
  /** Share of each predicted class (argmax) on the reference data, in class order. */
  predictions: { classes: string[]; shares: number[] };
  /** PSI thresholds for this model; DEFAULT_DRIFT_THRESHOLDS when absent. */
  thresholds?: DriftThresholds;
}

export function buildDriftReference(input: {
  features: Float32Array;
  featureCount: number;
  featureNames: readonly string[];
  predictedClasses: Int32Array;
  classes: readonly string[];
  bins?: number;
}): DriftReference {
  const { features, featureCount, featureNames, predictedClasses, classes } = input;
  const bins = input.bins ?? DEFAULT_BINS;
  const count = features.length / featureCount;
  if (!Number.isInteger(count) || count === 0) throw new RangeError(`features hold ${features.length} values, not a whole number of ${featureCount}-wide rows`);
  if (featureNames.length !== featureCount) throw new RangeError(`${featureNames.length} feature names for ${featureCount} features`);
  if (predictedClasses.length !== count) throw new RangeError(`${predictedClasses.length} predictions for ${count} rows`);
  const column = new Float64Array(count);
  const histograms = featureNames.map((name, f) => {
    for (let r = 0; r < count; r++) column[r] = features[r * featureCount + f]!;
    return { name, ...referenceHistogram(column, bins) };
  });
  const classCounts = new Array<number>(classes.length).fill(0);
  for (const c of predictedClasses) {
    if (c < 0 || c >= classes.length) throw new RangeError(`predicted class ${c} outside 0..${classes.length - 1}`);
    classCounts[c]!++;
  }
  return {
    schema: DRIFT_SCHEMA,
    bins,
    count,
    features: histograms,
    predictions: { classes: [...classes], shares: classCounts.map((n) => n / count) },
  };
}

const Share = Type.Number({ minimum: 0, maximum: 1 });
const Edge = Type.Number({ minimum: -3.4e38, maximum: 3.4e38 });
const Psi = Type.Number({ minimum: 0, maximum: 100 });
/** Open objects (like every manifest section) so that a newer hub may add fields older agents ignore. */
const DriftReferenceSection = Type.Object({
  schema: Type.Literal(DRIFT_SCHEMA),
  bins: Type.Integer({ minimum: 2, maximum: 1000 }),
  count: Type.Integer({ minimum: 1 }),
  features: Type.Array(Type.Object({ name: FeatureName, edges: Type.Array(Edge, { maxItems: 999 }), shares: Type.Array(Share, { minItems: 1, maxItems: 1000 }) }), { minItems: 1, maxItems: 1024 }),
  predictions: Type.Object({ classes: Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 1024 }), shares: Type.Array(Share, { minItems: 1, maxItems: 1024 }) }),
  thresholds: Type.Optional(Type.Object({ warn: Psi, alert: Psi })),
});
const sectionValidator = Compile(DriftReferenceSection);

/**
 * A manifest's `driftReference` section as the drift monitor uses it, or the problem that makes
 * it unusable: the schema, edges that are not strictly increasing, shares that do not fit the
 * edges or the classes, repeated feature names, `warn` above `alert`. The hub refuses such a
 * section when it is published; the agent checks again and then reports no drift for the model.
 */
export function parseDriftReference(section: unknown): { ok: true; reference: DriftReference } | { ok: false; problem: string } {
  if (!sectionValidator.Check(section)) return { ok: false, problem: `does not match ${DRIFT_SCHEMA}: ${describeErrors(sectionValidator, section)}` };
  const value = section as DriftReference;
  const names = new Set<string>();
  for (const [i, f] of value.features.entries()) {
    if (names.has(f.name)) return { ok: false, problem: `feature name '${f.name}' repeats` };
    names.add(f.name);
    if (!f.edges.every((e, j) => j === 0 || e > f.edges[j - 1]!)) return { ok: false, problem: `features[${i}].edges must be strictly increasing` };
    if (f.shares.length !== f.edges.length + 1) return { ok: false, problem: `features[${i}] has ${f.shares.length} shares for ${f.edges.length + 1} bins` };
  }
  if (value.predictions.shares.length !== value.predictions.classes.length) return { ok: false, problem: `predictions have ${value.predictions.shares.length} shares for ${value.predictions.classes.length} classes` };
  if (value.thresholds && value.thresholds.warn > value.thresholds.alert) return { ok: false, problem: `thresholds.warn (${value.thresholds.warn}) is above thresholds.alert (${value.thresholds.alert})` };
  return { ok: true, reference: value };
}
