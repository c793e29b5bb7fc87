/**
 * One value the console loads from the hub and keeps fresh: the pattern every page shares.
 *
 * `value` keeps the last good answer; `error` is the last failure (cleared by the next success),
 * so a page can show stale data with the one ErrorBanner instead of going blank. Refreshes are
 * coalesced: at most one request in flight, at most one every `minIntervalMs`, and a refresh
 * asked for meanwhile runs once afterwards. With `live`, the resource refetches when the live
 * stream (live-stream.svelte.ts) signals one of those event types, a reset or a poll tick.
 */
import { untrack } from 'svelte';
import { ApiError } from './api';
import type { LiveStream, StreamEvent } from './live-stream.svelte';

export interface ResourceOptions {
  live?: { stream: LiveStream; events: readonly StreamEvent[] };
  minIntervalMs?: number;
}

export class Resource<T> {
  value = $state.raw<T | undefined>(undefined);
  error = $state.raw<ApiError | null>(null);
  loaded = $state(false);
  updatedAt = $state<number | null>(null);

  readonly #load: (signal: AbortSignal) => Promise<T>;
  readonly #options: ResourceOptions;
  #controller: AbortController | undefined;
  #pending = false;
  #lastStart = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running = false;

  constructor(load: (signal: AbortSignal) => Promise<T>, options: ResourceOptions = {}) {
    this.#load = load;
    this.#options = options;
  }

  /** Loads now and follows the live stream; returns the stop (suits `$effect`). */
  start(): () => void {
    this.#running = true;
    const unsubscribe = this.#options.live?.stream.on(this.#options.live.events, () => this.refresh());
    untrack(() => void this.refresh());
    return () => {
      this.#running = false;
      unsubscribe?.();
      clearTimeout(this.#timer);
      this.#controller?.abort();
    };
  }

  /** Fetches again soon (coalesced, see above). Resolves when that fetch has settled. */
  async refresh(): Promise<void> {
    if (this.#controller) {
      this.#pending = true;
      return;
    }
    const wait = this.#lastStart + (this.#options.minIntervalMs ?? 500) - Date.now();
    if (wait > 0) {
      if (this.#timer === undefined) {
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          void this.refresh();
        }, wait);
      }
      return;
    }
    const controller = new AbortController();
    this.#controller = controller;
    this.#lastStart = Date.now();
    try {
      const value = await this.#load(controller.signal);
      if (controller.signal.aborted) return;
      this.value = value;
      this.error = null;
      this.loaded = true;
      this.updatedAt = Date.now();
    } catch (caught) {
      const error = ApiError.from(caught);
      if (!error.aborted && !controller.signal.aborted) this.error = error;
    } finally {
      this.#controller = undefined;
      if (this.#pending && this.#running) {
        this.#pending = false;
        void this.refresh();
      }
    }
  }
}
