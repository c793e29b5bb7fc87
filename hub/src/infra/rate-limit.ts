/**
 * A keyed token bucket: `take(key)` spends one token of `key`'s bucket and says whether there was
 * one. Buckets refill continuously at `ratePerSec` up to `burst`. Memory is bounded: past
 * `maxKeys` buckets the least recently used is forgotten (a forgotten key starts full again,
 * which errs on the side of serving).
 */
export interface RateLimitOptions {
  ratePerSec: number;
  burst: number;
  maxKeys?: number;
  clock?: () => number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly maxKeys: number;
  private readonly clock: () => number;

  constructor(private readonly options: RateLimitOptions) {
    this.maxKeys = options.maxKeys ?? 100_000;
    this.clock = options.clock ?? Date.now;
  }

  take(key: string): boolean {
    const bucket = this.refill(key);
    // Re-insert to keep the map in least-recently-used order.
    this.buckets.delete(key);
    this.buckets.set(key, bucket);
    if (this.buckets.size > this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
    if (bucket.tokens < 1) return false;
    bucket.tokens -= 1;
    return true;
  }

  /** Whether `key` has a token left, without spending it (to refuse before doing work, and `take` on failure). */
  allowed(key: string): boolean {
    return this.refill(key).tokens >= 1;
  }

  private refill(key: string): { tokens: number; at: number } {
    const now = this.clock();
    const bucket = this.buckets.get(key) ?? { tokens: this.options.burst, at: now };
    bucket.tokens = Math.min(this.options.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.options.ratePerSec);
    bucket.at = now;
    return bucket;
  }

  /** Forgets a key (a disconnected client). */
  forget(key: string): void {
    this.buckets.delete(key);
  }
}
