/**
 * One ticking clock for the whole console, so every "12 s ago" on the page advances together
 * and there is one timer instead of one per row.
 */
export class Clock {
  now = $state(Date.now());
  #timer: ReturnType<typeof setInterval> | undefined;
  #users = 0;

  /** Starts ticking (shared by all callers); returns the matching stop. */
  start(intervalMs = 1000): () => void {
    this.#users += 1;
    if (this.#timer === undefined) {
      this.now = Date.now();
      this.#timer = setInterval(() => (this.now = Date.now()), intervalMs);
    }
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      this.#users -= 1;
      if (this.#users === 0 && this.#timer !== undefined) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
    };
  }
}

export const clock = new Clock();
