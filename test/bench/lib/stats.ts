/**
 * Distributions of one run: nearest-rank quantiles and a compact summary. Benchmarks report
 * these and ratios between them, never a pass/fail time.
 */

/** The nearest-rank quantile `q` (0..1) of `samples`; NaN for no samples. */
export function quantile(samples: readonly number[], q: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1))]!;
}

export const median = (samples: readonly number[]): number => quantile(samples, 0.5);

export interface Distribution {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export function distribution(samples: readonly number[]): Distribution {
  return { count: samples.length, p50: quantile(samples, 0.5), p99: quantile(samples, 0.99), max: samples.reduce((m, v) => Math.max(m, v), samples.length ? -Infinity : Number.NaN) /* no spread: a million samples overflow the stack */ };
}

/** Milliseconds with a precision that suits their size ("0.214 ms", "7.6 ms", "412 ms"). */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return '—';
  if (Math.abs(value) < 1) return `${value.toFixed(3)} ms`;
  if (Math.abs(value) < 100) return `${value.toFixed(1)} ms`;
  return `${Math.round(value)} ms`;
}

/** Microseconds for sub-millisecond figures ("61.4 µs"). */
export const us = (valueMs: number): string => (Number.isFinite(valueMs) ? `${(valueMs * 1000).toFixed(1)} µs` : '—');

/** /proc's "kB" (KiB) in MB of 10^6 bytes, the unit the targets are written in. */
export const mbOfKib = (kib: number): number => (kib * 1024) / 1e6;
export const mb = (kib: number): string => `${mbOfKib(kib).toFixed(1)} MB`;

export const ratio = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}×` : '—');

export const sleep = (millis: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, millis));

/** Wall-clock epoch milliseconds with sub-millisecond resolution (comparable with other processes' Date.now()). */
export const epochMs = (): number => performance.timeOrigin + performance.now();

/** Polls `probe` until it returns something truthy; throws naming `what` after `timeoutMs`. */
export async function until<T>(what: string, probe: () => T | null | undefined | false | Promise<T | null | undefined | false>, timeoutMs = 120_000, intervalMs = 10): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== null && value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}
