/**
 * The local inference API on loopback, on node:http so that the agent installs without a web
 * framework.
 *
 *   POST /v1/infer  {"inputs": {"<name>": {"dims": [1, 16], "data": [...]}}}
 *     200 {"outputs": {"<name>": {"dims": [...], "data": [...]}}, "model": {name, version, digest}, "latencyMs"}
 *     400 {code, message}: body not JSON, over 1 MiB, or inputs that do not fit the model
 *     503 {code: "no_model"}: nothing is loaded
 *   GET /healthz    {"status": "ok" | "no_model", "active": {name, version, digest, deploymentId} | null}
 *
 * Inferences go through the pipeline, so they count in the same statistics as every source.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Type } from 'typebox';
import { Compile, describeErrors, type TensorSpecT } from '@cairn/shared';
import type { Feeds } from './runtime/types.js';
import type { ActiveModel } from './active-model.js';
import type { Pipeline } from './pipeline.js';
import { activeBundleOf } from './reported.js';
import { NoModelError } from '../errors.js';

export const MAX_BODY_BYTES = 1024 * 1024;
/** Past this much an oversized body is no longer drained politely: the socket is closed. */
const MAX_DRAIN_BYTES = 16 * MAX_BODY_BYTES;

const TensorJson = Type.Object(
  {
    dims: Type.Array(Type.Integer({ minimum: 0, maximum: 2 ** 31 }), { maxItems: 8 }),
    data: Type.Array(Type.Number()),
  },
  { additionalProperties: false },
);
const InferRequest = Type.Object(
  { inputs: Type.Record(Type.String({ minLength: 1, maxLength: 128 }), TensorJson, { minProperties: 1, maxProperties: 16 }) },
  { additionalProperties: false },
);
const requestValidator = Compile(InferRequest);

type ApiErrorCode = 'bad_json' | 'body_too_large' | 'bad_request' | 'bad_shape' | 'no_model' | 'inference_failed' | 'not_found' | 'method_not_allowed';

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
  logger: Logger;
}

export class LocalApi {
  private server: http.Server | null = null;
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
    this.server = server;
    this.options.logger.info({ host: this.options.host, port: this.port }, 'local API listening');
  }

  async stop(): Promise<void> {
    const server = this.server;
    this.server = null;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
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
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/v1/infer') {
        if (req.method !== 'POST') throw new ApiError(405, 'method_not_allowed', 'use POST');
        const body = await readBody(req, res);
        send(res, 200, await this.infer(body));
      } else if (path === '/healthz') {
        if (req.method !== 'GET' && req.method !== 'HEAD') throw new ApiError(405, 'method_not_allowed', 'use GET');
        const current = this.options.active.current;
        send(res, 200, { status: current ? 'ok' : 'no_model', active: current ? activeBundleOf(current.bundle) : null });
      } else {
        throw new ApiError(404, 'not_found', `no route ${req.method ?? ''} ${path ?? ''}`);
      }
    } catch (err) {
      this.counts.errors++;
      const apiError = err instanceof ApiError ? err : new ApiError(500, 'inference_failed', (err as Error).message);
      if (apiError.status >= 500 && apiError.status !== 503) this.options.logger.warn({ err }, 'local API request failed');
      if (!res.headersSent) send(res, apiError.status, { code: apiError.code, message: apiError.message });
    }
  }

  private async infer(body: string): Promise<unknown> {
    let value: unknown;
    try {
      value = JSON.parse(body);
    } catch (err) {
      throw new ApiError(400, 'bad_json', `the body is not JSON: ${(err as Error).message}`);
    }
    if (!requestValidator.Check(value)) throw new ApiError(400, 'bad_request', describeErrors(requestValidator, value));
    const current = this.options.active.current;
    if (!current) throw new ApiError(503, 'no_model', 'no model is loaded');
    const inputs = current.session.inputs.length > 0 ? current.session.inputs : current.bundle.manifest.inputs;
    const feeds = toFeeds((value as { inputs: Record<string, { dims: number[]; data: number[] }> }).inputs, inputs);
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

/** Checks the request's tensors against the model's inputs: every input present, nothing else, shapes that fit. */
function toFeeds(inputs: Record<string, { dims: number[]; data: number[] }>, specs: TensorSpecT[]): Feeds {
  const feeds: Feeds = {};
  const expected = new Set(specs.map((s) => s.name));
  for (const name of Object.keys(inputs)) {
    if (!expected.has(name)) throw new ApiError(400, 'bad_shape', `the model has no input '${name}' (inputs: ${[...expected].join(', ')})`);
  }
  for (const spec of specs) {
    const tensor = inputs[spec.name];
    if (!tensor) throw new ApiError(400, 'bad_shape', `input '${spec.name}' is missing`);
    if (tensor.dims.length !== spec.dims.length) {
      throw new ApiError(400, 'bad_shape', `input '${spec.name}' must have ${spec.dims.length} dimensions [${spec.dims.join(', ')}], got [${tensor.dims.join(', ')}]`);
    }
    spec.dims.forEach((d, i) => {
      if (typeof d === 'number' && d > 0 && tensor.dims[i] !== d) {
        throw new ApiError(400, 'bad_shape', `input '${spec.name}' dimension ${i} must be ${d}, got ${tensor.dims[i]}`);
      }
    });
    const elements = tensor.dims.reduce((n, d) => n * d, 1);
    if (elements !== tensor.data.length) {
      throw new ApiError(400, 'bad_shape', `input '${spec.name}' has dims [${tensor.dims.join(', ')}] (${elements} values) but ${tensor.data.length} values`);
    }
    if (elements === 0) throw new ApiError(400, 'bad_shape', `input '${spec.name}' is empty`);
    feeds[spec.name] = { dims: tensor.dims, data: Float32Array.from(tensor.data) };
  }
  return feeds;
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
