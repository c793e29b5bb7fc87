/**
 * The drift reference stored in a bundle manifest's `driftReference` section: one quantile
 * histogram per input feature and one for the predicted class distribution, computed on the
 * training data. The agent's drift monitor compares live windows against it with PSI.
 */
import { referenceHistogram, type ReferenceHistogram, DEFAULT_BINS } from './histogram.js';

export interface DriftReference {
  schema: 'cairn.drift/v1';
  bins: number;
  /** Reference rows the histograms were computed from. */
  count: number;
  features: ({ name: string } & ReferenceHistogram)[];
  /** Share of each predicted class (argmax) on the reference data, in class order. */
  predictions: { classes: string[]; shares: number[] };
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
    schema: 'cairn.drift/v1',
    bins,
    count,
    features: histograms,
    predictions: { classes: [...classes], shares: classCounts.map((n) => n / count) },
  };
}
