/**
 * The local inference API on loopback, on node:http so that the agent installs without a web
 * framework.
 *
 *   POST /v1/infer  one record (sources/records.ts): {"inputs": {...}}, {"features": [...]} or
 *                   {"samples": [...], "sampleRateHz": 12800}
 *     200 {"outputs": {"<name>": {"dims": [...], "data": [...]}}, "model": {name, version, digest}, "latencyMs"}
 *     400 {code, message}: code bad_json, body_too_large, unknown_format, bad_record, bad_shape
 *         or model_mismatch (the record's reason)
 *     503 {code: "no_model"}: nothing is loaded
 *   GET /healthz    200 while the process serves HTTP (liveness): {"status": "ok" | "no_model", "active"}
 *   GET /readyz     200 {"status": "ready", ...} when a model is served and the agent is not
 *                   stopping, else 503 {"status": "not_ready", "reasons": [...]} (readiness:
 *                   whether to send inferences here). The hub connection is reported, not
 *                   required: inference works offline.
 *   GET /metrics    Prometheus text (agent-metrics.ts)
 *
 * Inferences go through the pipeline, so they count in the same statistics as every source.
 * `stop()` is graceful: the listener closes, readiness turns 503, requests in flight finish
 * (up to `drainMs`), then the remaining connections are closed.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { ActiveModel } from './active-model.js';
import type { Feeds } from './runtime/types.js';
import type { Pipeline } from './pipeline.js';
import type { AgentMetrics } from './agent-metrics.js';
import { activeBundleOf } from './reported.js';
import { NoModelError } from '../errors.js';
import { parseRecord, recordFeeds, RecordError } from './sources/records.js';

export const MAX_BODY_BYTES = 1024 * 1024;
/** Past this much an oversized body is no longer drained politely: the socket is closed. */
const MAX_DRAIN_BYTES = 16 * MAX_BODY_BYTES;

type ApiErrorCode = RecordError['reason'] | 'body_too_large' | 'not_found' | 'method_not_allowed';

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface LocalApiOptions {
  host: string;
  port: number;
  active: ActiveModel;
  pipeline: Pipeline;
  metrics: AgentMetrics;
  /** Whether the hub connection is up (reported by /readyz, not required). */
  connected: () => boolean;
  logger: Logger;
  /** How long `stop()` lets requests in flight finish; default 5 s. */
  drainMs?: number;
}

export class LocalApi {
  private server: http.Server | null = null;
  private stopping = false;
  private inflight = 0;
  private readonly counts = { requests: 0, errors: 0 };

  constructor(private readonly options: LocalApiOptions) {}

  async start(): Promise<void> {
    const server = http.createServer((req, res) => void this.handle(req, res));
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.options.port, this.options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', (err) => this.options.logger.error({ err }, 'local API server error'));
    this.stopping = false;
    this.server = server;
    this.options.logger.info({ host: this.options.host, port: this.port }, 'local API listening');
  }

  /** Stops listening, lets requests in flight finish (up to `drainMs`), then closes every connection. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.stopping = true;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const deadline = Date.now() + (this.options.drainMs ?? 5000);
    while (this.inflight > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (this.inflight > 0) this.options.logger.warn({ inflight: this.inflight }, 'closing the local API with requests still running');
    server.closeAllConnections();
    await closed;
    this.server = null;
  }

  /** The bound port (useful with port 0), or null when not listening. */
  get port(): number | null {
    const address = this.server?.address();
    return address && typeof address === 'object' ? (address as AddressInfo).port : null;
  }

  get stats(): { requests: number; errors: number } {
    return { ...this.counts };
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.counts.requests++;
    this.inflight++;
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const route = ROUTES.has(path) ? path : 'other';
    // Keep-alive connections would hold a graceful stop open: ask clients to reconnect elsewhere.
    if (this.stopping) res.setHeader('connection', 'close');
    try {
      if (path === '/v1/infer') {
        if (req.method !== 'POST') throw new ApiError(405, 'method_not_allowed', 'use POST');
        const body = await readBody(req, res);
        send(res, 200, await this.infer(body));
      } else if (path === '/healthz') {
        allowGet(req);
        const current = this.options.active.current;
        send(res, 200, { status: current ? 'ok' : 'no_model', active: current ? activeBundleOf(current.bundle) : null });
      } else if (path === '/readyz') {
        allowGet(req);
        const current = this.options.active.current;
        const reasons = [...(current ? [] : ['no_model']), ...(this.stopping ? ['stopping'] : [])];
        const body = { active: current ? activeBundleOf(current.bundle) : null, trial: this.options.active.onTrial, hubConnected: this.options.connected() };
        send(res, reasons.length === 0 ? 200 : 503, reasons.length === 0 ? { status: 'ready', ...body } : { status: 'not_ready', reasons, ...body });
      } else if (path === '/metrics') {
        allowGet(req);
        const { contentType, body } = await this.options.metrics.render();
        res.writeHead(200, { 'content-type': contentType, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      } else {
        throw new ApiError(404, 'not_found', `no route ${req.method ?? ''} ${path}`);
      }
    } catch (err) {
      this.counts.errors++;
      const apiError = err instanceof ApiError ? err : new ApiError(500, 'inference_failed', (err as Error).message);
      if (apiError.status >= 500 && apiError.status !== 503) this.options.logger.warn({ err }, 'local API request failed');
      if (!res.headersSent) send(res, apiError.status, { code: apiError.code, message: apiError.message });
    } finally {
      this.inflight--;
      this.options.metrics.apiRequest(route, res.statusCode);
    }
  }

  private async infer(body: string): Promise<unknown> {
    let feeds: Feeds;
    try {
      const record = parseRecord(body);
      const current = this.options.active.current;
      if (!current) throw new ApiError(503, 'no_model', 'no model is loaded');
      feeds = recordFeeds(record, current);
    } catch (err) {
      if (err instanceof RecordError) throw new ApiError(400, err.reason, err.message);
      throw err;
    }
    try {
      const result = await this.options.pipeline.infer(feeds);
      const outputs: Record<string, { dims: number[]; data: Array<number | null> }> = {};
      for (const [name, tensor] of Object.entries(result.outputs)) {
        outputs[name] = { dims: tensor.dims, data: Array.from(tensor.data, (x) => (Number.isFinite(x) ? x : null)) };
      }
      const { manifest, digest } = result.bundle;
      return { outputs, model: { name: manifest.name, version: manifest.version, digest }, latencyMs: Math.round(result.latencyMs * 1000) / 1000 };
    } catch (err) {
      if (err instanceof NoModelError) throw new ApiError(503, 'no_model', err.message);
      throw new ApiError(500, 'inference_failed', (err as Error).message);
    }
  }
}

const ROUTES = new Set(['/v1/infer', '/healthz', '/readyz', '/metrics']);

function allowGet(req: http.IncomingMessage): void {
  if (req.method !== 'GET' && req.method !== 'HEAD') throw new ApiError(405, 'method_not_allowed', 'use GET');
}

/** Reads the body up to MAX_BODY_BYTES; past that answers 400 and discards the rest. */
function readBody(req: http.IncomingMessage, res: http.ServerResponse): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    const tooLarge = (): ApiError => new ApiError(400, 'body_too_large', `the body exceeds ${MAX_BODY_BYTES} bytes`);
    const chunks: Buffer[] = [];
    let size = 0;
    let refused = false;
    const refuse = (): void => {
      refused = true;
      chunks.length = 0;
      res.setHeader('connection', 'close');
      reject(tooLarge());
    };
    if (Number.isFinite(declared) && declared > MAX_BODY_BYTES) refuse();
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (refused) {
        if (size > MAX_DRAIN_BYTES) req.destroy();
        return;
      }
      if (size > MAX_BODY_BYTES) refuse();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      if (!refused) resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (err) => {
      if (!refused) reject(err);
    });
  });
}

function send(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
