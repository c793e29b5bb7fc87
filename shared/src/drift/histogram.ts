/**
 * Reference histograms and the Population Stability Index (PSI), the drift statistic Cairn
 * carries in bundle manifests (reference, computed on training data) and in telemetry (live,
 * computed on the device over a sliding window).
 *
 * Bins are quantile bins of the reference: `edges` are the inner cut points (bins - 1 of them),
 * so each reference bin holds about the same share of the data; values below the first edge fall
 * into bin 0 and values at or above the last into the last bin, so out-of-range live data is
 * counted, never dropped. Repeated quantiles (a discrete feature) collapse into fewer bins.
 *
 * PSI = Σ (live_i − ref_i) · ln(live_i / ref_i) over bins of shares, with empty bins floored at
 * `PSI_EPSILON` (as Evidently does). Rule of thumb: < 0.1 insignificant, 0.1–0.25 moderate,
 * > 0.25 major.
 */

export const PSI_EPSILON = 1e-4;
export const DEFAULT_BINS = 10;

export interface ReferenceHistogram {
  /** Inner cut points, strictly increasing; bins = edges.length + 1. */
  edges: number[];
  /** Share of the reference in each bin; sums to 1. */
  shares: number[];
}

/** Quantile bins of `values` (at most `bins`, fewer when quantiles repeat) and the reference shares. */
export function referenceHistogram(values: ArrayLike<number>, bins = DEFAULT_BINS): ReferenceHistogram {
  if (!Number.isInteger(bins) || bins < 2) throw new RangeError(`bins must be an integer ≥ 2, got ${bins}`);
  const sorted = Float64Array.from(values).sort();
  if (sorted.length === 0) throw new RangeError('a reference histogram needs at least one value');
  if (!sorted.every(Number.isFinite)) throw new RangeError('reference values must be finite');
  const edges: number[] = [];
  for (let i = 1; i < bins; i++) {
    const q = quantile(sorted, i / bins);
    // Strictly increasing edges, and none at the minimum (it would leave bin 0 empty).
    if (q > sorted[0]! && (edges.length === 0 || q > edges[edges.length - 1]!)) edges.push(q);
  }
  const counts = binCounts(edges, values);
  return { edges, shares: counts.map((c) => c / sorted.length) };
}

/** Index of the bin `value` falls in (binary search over the edges). */
export function binOf(edges: readonly number[], value: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (value >= edges[mid]!) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export function binCounts(edges: readonly number[], values: ArrayLike<number>): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) continue; // NaN has no bin; the runtime's health checks count NaN outputs
    counts[binOf(edges, v)]!++;
  }
  return counts;
}

/** PSI of live bin counts against reference shares (same binning). */
export function psi(referenceShares: readonly number[], liveCounts: readonly number[], epsilon = PSI_EPSILON): number {
  if (referenceShares.length !== liveCounts.length) throw new RangeError(`bin counts differ: reference ${referenceShares.length}, live ${liveCounts.length}`);
  const total = liveCounts.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  let sum = 0;
  for (let i = 0; i < referenceShares.length; i++) {
    const ref = Math.max(referenceShares[i]!, epsilon);
    const live = Math.max(liveCounts[i]! / total, epsilon);
    sum += (live - ref) * Math.log(live / ref);
  }
  return sum;
}

/** The q-quantile as a value of the data (no interpolation), so a discrete feature keeps its levels as edges. */
function quantile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}
