/**
 * Pauses a child Node process at a chosen line through the V8 inspector, so that a system test
 * can kill -9 it exactly inside a phase that is over in milliseconds (verifying a digest,
 * starting the golden probes), with no test-only code in the process. The child runs with
 * `--inspect=127.0.0.1:0` and announces the inspector's WebSocket address on stderr.
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import WebSocket from 'ws';
import { waitFor } from './wait.js';

export interface Breakpoint {
  /** The compiled JavaScript file. */
  file: string;
  /** Text found on exactly one line of the file: the line to pause at, before it runs. */
  at: string;
  /** A JavaScript expression evaluated in the paused frame: pause only when it is true. */
  condition?: string;
}

export class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (v: any) => void; reject: (e: Error) => void }>();
  private readonly listeners = new Set<(method: string, params: any) => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: unknown };
      if (message.id !== undefined) {
        const call = this.pending.get(message.id);
        this.pending.delete(message.id);
        if (message.error) call?.reject(new Error(message.error.message));
        else call?.resolve(message.result);
      } else if (message.method) {
        for (const listener of this.listeners) listener(message.method, message.params);
      }
    });
    socket.on('error', () => undefined);
  }

  /** Attaches to the process whose output is `output` (it must have been started with --inspect). */
  static async attach(output: () => string): Promise<Inspector> {
    const url = (await waitFor('the inspector address', () => /Debugger listening on (ws:\/\/\S+)/.exec(output()), { timeoutMs: 60_000 }))[1]!;
    const socket = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    const inspector = new Inspector(socket);
    await inspector.call('Debugger.enable');
    return inspector;
  }

  /** Sets the breakpoint; `paused` resolves once the process is paused there. */
  async pauseAt(breakpoint: Breakpoint): Promise<{ paused: Promise<void> }> {
    const lines = readFileSync(breakpoint.file, 'utf8').split('\n');
    const matches = lines.flatMap((line, i) => (line.includes(breakpoint.at) ? [i] : []));
    if (matches.length !== 1) throw new Error(`"${breakpoint.at}" is on ${matches.length} lines of ${breakpoint.file}, not one`);
    const { breakpointId } = (await this.call('Debugger.setBreakpointByUrl', {
      url: pathToFileURL(breakpoint.file).href,
      lineNumber: matches[0],
      ...(breakpoint.condition ? { condition: breakpoint.condition } : {}),
    })) as { breakpointId: string };
    const paused = new Promise<void>((resolve) => {
      const listener = (method: string, params: { hitBreakpoints?: string[] }) => {
        if (method !== 'Debugger.paused') return;
        // A `debugger` statement somewhere is not what we wait for: let the process go on.
        if (!params.hitBreakpoints?.includes(breakpointId)) return void this.call('Debugger.resume').catch(() => undefined);
        this.listeners.delete(listener);
        resolve();
      };
      this.listeners.add(listener);
    });
    return { paused };
  }

  close(): void {
    this.socket.terminate();
  }

  private call(method: string, params: object = {}): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }
}
