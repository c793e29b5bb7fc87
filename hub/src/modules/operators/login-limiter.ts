/**
 * Login throttling, per username and per source address: after `maxFailures` consecutive
 * failures a key is locked for `lockoutMs`, doubled by each further failure up to `maxLockoutMs`.
 * While any key of an attempt is locked the password is not even checked (the answer is 429 with
 * `retry-after`), so guessing stops, whether the guess would have been right or not.
 *
 * A success clears the username's count; an address's count is forgotten after a quiet period.
 * State is in memory (a restart forgives, which needs control of the hub) and bounded: the
 * oldest entries go first when an attacker invents many usernames.
 */
export interface LoginLimiterOptions {
  maxFailures: number;
  lockoutMs: number;
  maxLockoutMs: number;
  clock: () => number;
  /** Failures older than this are forgotten once no lock is running. */
  forgetAfterMs?: number;
  maxEntries?: number;
}

interface Entry {
  failures: number;
  lastFailureAt: number;
  lockedUntil: number;
}

export class LoginLimiter {
  private readonly entries = new Map<string, Entry>();
  private readonly forgetAfterMs: number;
  private readonly maxEntries: number;

  constructor(private readonly options: LoginLimiterOptions) {
    this.forgetAfterMs = options.forgetAfterMs ?? 15 * 60_000;
    this.maxEntries = options.maxEntries ?? 10_000;
  }

  /** Milliseconds until an attempt with these keys may be tried; 0 when it may be tried now. */
  retryAfterMs(keys: readonly string[]): number {
    const now = this.options.clock();
    let wait = 0;
    for (const key of keys) {
      const entry = this.live(key, now);
      if (entry && entry.lockedUntil > now) wait = Math.max(wait, entry.lockedUntil - now);
    }
    return wait;
  }

  failed(keys: readonly string[]): void {
    const now = this.options.clock();
    for (const key of keys) {
      const entry = this.live(key, now) ?? { failures: 0, lastFailureAt: now, lockedUntil: 0 };
      entry.failures += 1;
      entry.lastFailureAt = now;
      if (entry.failures >= this.options.maxFailures) {
        const lock = this.options.lockoutMs * 2 ** (entry.failures - this.options.maxFailures);
        entry.lockedUntil = now + Math.min(this.options.maxLockoutMs, lock);
      }
      this.entries.delete(key); // re-insert: the map's order is least recently failed first
      this.entries.set(key, entry);
    }
    while (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
  }

  succeeded(key: string): void {
    this.entries.delete(key);
  }

  private live(key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry && entry.lockedUntil <= now && now - entry.lastFailureAt > this.forgetAfterMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }
}
