/**
 * A stand-in input source: every `intervalMs` it builds float32 inputs matching the active
 * model's input signatures (symbolic dimensions → 1) from a seeded PRNG and runs them through
 * the pipeline. Runs never overlap; nothing runs while no model is active. (Vibration-like
 * features come later.)
 */
import type { Logger } from 'pino';
import type { TensorSpecT } from '@cairn/shared';
import type { Feeds } from './runtime/types.js';
import type { ActiveModel } from './active-model.js';
import type { Pipeline } from './pipeline.js';
import { mulberry32 } from '@cairn/shared';

const FLOAT32_TYPES = new Set(['float32', 'float', 'tensor(float)']);

export interface SimulatedSourceOptions {
  intervalMs: number;
  seed: number;
  active: ActiveModel;
  pipeline: Pipeline;
  logger: Logger;
}

export class SimulatedSource {
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly random: () => number;
  private warned = new Set<string>();
  private runs = 0;

  constructor(private readonly options: SimulatedSourceOptions) {
    this.random = mulberry32(options.seed);
  }

  start(): void {
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get count(): number {
    return this.runs;
  }

  private async tick(): Promise<void> {
    const current = this.options.active.current;
    if (this.running || !current) return;
    const feeds = this.buildFeeds(current.session.inputs.length > 0 ? current.session.inputs : current.bundle.manifest.inputs, current.bundle.digest);
    if (!feeds) return;
    this.running = true;
    try {
      await this.options.pipeline.infer(feeds);
      this.runs++;
    } catch (err) {
      this.options.logger.debug({ err }, 'simulated inference failed');
    } finally {
      this.running = false;
    }
  }

  private buildFeeds(inputs: TensorSpecT[], digest: string): Feeds | null {
    const feeds: Feeds = {};
    for (const input of inputs) {
      if (!FLOAT32_TYPES.has(input.type)) {
        if (!this.warned.has(digest)) {
          this.warned.add(digest);
          this.options.logger.warn({ input: input.name, type: input.type }, 'the simulated source only produces float32 inputs; idle for this model');
        }
        return null;
      }
      const dims = input.dims.map((d) => (typeof d === 'number' && d > 0 ? d : 1));
      const data = new Float32Array(dims.reduce((n, d) => n * d, 1));
      for (let i = 0; i < data.length; i++) data[i] = this.random() * 2 - 1;
      feeds[input.name] = { dims, data };
    }
    return feeds;
  }
}
