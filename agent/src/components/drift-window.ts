/**
 * The drift monitor's sliding window: bin counts of each input feature and of the predicted
 * class over the last `windowMs`, kept as a ring of `buckets` time buckets of `windowMs /
 * buckets` each. Memory is fixed (one count per bin per bucket) however many inferences run,
 * and old data expires a bucket at a time.
 *
 * Contracts:
 * - A bucket holds one period `floor(ts / bucketMs)`; a sample for a newer period clears the
 *   ring slot first. `totals(now)` adds the buckets of the last `buckets` periods up to now's,
 *   so the window spans between `windowMs - bucketMs` and `windowMs` of time.
 * - A sample older than the window (the clock stepped back, or it is late) is not counted.
 * - A feature value that is not finite has no bin and counts for no feature bin; a row without
 *   a predicted class (NaN outputs) counts for no class. `samples` counts rows.
 */

export interface WindowTotals {
  samples: number;
  /** Per feature, its count in each of its bins. */
  features: number[][];
  /** Count per class. */
  predictions: number[];
}

interface Bucket {
  period: number;
  samples: number;
  counts: Uint32Array;
}

export class DriftWindow {
  readonly bucketMs: number;
  private readonly ring: Bucket[];
  /** Offset of each feature's bins in a bucket's counts; the classes follow the last feature. */
  private readonly offsets: number[];
  private readonly classOffset: number;

  constructor(
    readonly windowMs: number,
    buckets: number,
    private readonly featureBins: readonly number[],
    private readonly classCount: number,
  ) {
    if (!Number.isInteger(buckets) || buckets < 1) throw new RangeError(`buckets must be a positive integer, got ${buckets}`);
    this.bucketMs = Math.max(1, Math.floor(windowMs / buckets));
    this.offsets = [];
    let width = 0;
    for (const bins of featureBins) {
      this.offsets.push(width);
      width += bins;
    }
    this.classOffset = width;
    width += classCount;
    this.ring = Array.from({ length: buckets }, () => ({ period: -Infinity, samples: 0, counts: new Uint32Array(width) }));
  }

  /**
   * One row at `ts`: its bin per feature (-1: no bin) and its predicted class (-1: none).
   * Returns false when the row is older than the window and was not counted.
   */
  add(ts: number, featureBins: ArrayLike<number>, predictedClass: number): boolean {
    const period = Math.floor(ts / this.bucketMs);
    const bucket = this.ring[mod(period, this.ring.length)]!;
    if (bucket.period > period) return false;
    if (bucket.period < period) {
      bucket.period = period;
      bucket.samples = 0;
      bucket.counts.fill(0);
    }
    bucket.samples++;
    for (let f = 0; f < this.offsets.length; f++) {
      const bin = featureBins[f]!;
      if (bin >= 0 && bin < this.featureBins[f]!) bucket.counts[this.offsets[f]! + bin]!++;
    }
    if (predictedClass >= 0 && predictedClass < this.classCount) bucket.counts[this.classOffset + predictedClass]!++;
    return true;
  }

  /** The counts of the window ending at `now`. */
  totals(now: number): WindowTotals {
    const newest = Math.floor(now / this.bucketMs);
    const oldest = newest - this.ring.length + 1;
    const sum = new Array<number>(this.classOffset + this.classCount).fill(0);
    let samples = 0;
    for (const bucket of this.ring) {
      if (bucket.period < oldest || bucket.period > newest) continue;
      samples += bucket.samples;
      for (let i = 0; i < sum.length; i++) sum[i]! += bucket.counts[i]!;
    }
    return {
      samples,
      features: this.featureBins.map((bins, f) => sum.slice(this.offsets[f]!, this.offsets[f]! + bins)),
      predictions: sum.slice(this.classOffset),
    };
  }
}

function mod(n: number, m: number): number {
  return ((n % m) + m) % m;
}
