/**
 * The fleet's device list as the console sees it, and how it is kept fresh.
 *
 * Today it polls `GET /api/v1/devices` every 2 s. This module is the only place that knows that:
 * components read `devices`, `summary`, `loaded`, `error` and `updatedAt`, so moving to
 * server-sent events (DESIGN §6) replaces the body of `start()` and nothing else.
 */
import { untrack } from 'svelte';
import { ApiError, type Api, type Device } from './api';

export interface FleetSummary {
  total: number;
  online: number;
  offline: number;
  /** Devices with an active model, whatever their connection state. */
  serving: number;
}

export function summarize(devices: readonly Device[]): FleetSummary {
  let online = 0;
  let serving = 0;
  for (const device of devices) {
    if (device.online) online += 1;
    if (device.active) serving += 1;
  }
  return { total: devices.length, online, offline: devices.length - online, serving };
}

/** Stable order so rows do not jump between refreshes: by id, with numbers compared as numbers. */
const byId = new Intl.Collator(undefined, { numeric: true, sensitivity: 'base' });
export function sortDevices(devices: readonly Device[]): Device[] {
  return [...devices].sort((a, b) => byId.compare(a.id, b.id));
}

export interface FleetStoreOptions {
  intervalMs?: number;
}

export class FleetStore {
  /** Replaced wholesale on each refresh, never mutated in place. */
  devices = $state.raw<Device[]>([]);
  summary = $derived(summarize(this.devices));
  /** True once the first answer has arrived; the list may be stale afterwards (see `error`). */
  loaded = $state(false);
  /** The last refresh's failure; cleared by the next success. The list keeps its last good value. */
  error = $state.raw<ApiError | null>(null);
  /** When the list was last received (ms since epoch). */
  updatedAt = $state<number | null>(null);

  readonly intervalMs: number;
  readonly #api: Api;
  #running = false;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inFlight: AbortController | undefined;

  constructor(api: Api, options: FleetStoreOptions = {}) {
    this.#api = api;
    this.intervalMs = options.intervalMs ?? 2000;
  }

  /**
   * Starts refreshing; returns the matching stop (suits `$effect(() => store.start())`).
   * The next poll is scheduled when the previous one has finished, so a slow hub never has
   * requests piling up. While the tab is hidden it does not poll, and it refreshes at once
   * when the tab is shown again.
   */
  start(): () => void {
    if (this.#running) return () => this.stop();
    this.#running = true;
    document.addEventListener('visibilitychange', this.#onVisibility);
    // Untracked: an effect calling start() must not restart polling whenever some state read on
    // the way to the first request changes.
    untrack(() => void this.#poll());
    return () => this.stop();
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#inFlight?.abort();
    this.#inFlight = undefined;
    document.removeEventListener('visibilitychange', this.#onVisibility);
  }

  /** Fetches now (a Retry button, say), then carries on with the usual schedule. */
  refresh(): Promise<void> {
    clearTimeout(this.#timer);
    return this.#poll();
  }

  #onVisibility = (): void => {
    if (document.visibilityState === 'visible' && this.#running) void this.refresh();
  };

  async #poll(): Promise<void> {
    if (!this.#running) return;
    if (document.visibilityState !== 'hidden') {
      this.#inFlight?.abort();
      const controller = new AbortController();
      this.#inFlight = controller;
      try {
        const list = await this.#api.listDevices(controller.signal);
        if (controller.signal.aborted) return;
        this.devices = sortDevices(list.devices);
        this.updatedAt = Date.now();
        this.error = null;
        this.loaded = true;
      } catch (caught) {
        const error = ApiError.from(caught);
        if (error.aborted || controller.signal.aborted) return;
        this.error = error;
      } finally {
        if (this.#inFlight === controller) this.#inFlight = undefined;
      }
    }
    if (this.#running) {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => void this.#poll(), this.intervalMs);
    }
  }
}
