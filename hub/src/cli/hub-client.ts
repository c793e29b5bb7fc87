/**
 * The CLI's client for the hub HTTP API. Finds the hub and token from flags, then
 * CAIRN_HUB_URL / CAIRN_TOKEN, then the hub's data directory (on the hub's own machine).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_TOKEN_FILE, CSRF_HEADER } from '../infra/auth.js';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  hub?: string;
  token?: string;
  data?: string;
}

export class HubClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
    /** Sent with every request: a session cookie and the CSRF header, for a client made by `login`. */
    private readonly extraHeaders: Readonly<Record<string, string>> = {},
  ) {}

  /** A client that acts as a user through a console session (what a browser does), not a token. */
  static async login(baseUrl: string, username: string, password: string): Promise<HubClient> {
    const csrf = { [CSRF_HEADER]: '1' };
    const response = await new HubClient(baseUrl, undefined, csrf).send('POST', '/api/v1/session', { username, password });
    const cookie = response.headers.get('set-cookie')?.split(';')[0];
    if (!cookie) throw new ApiError(response.status, 'CAIRN_NO_SESSION', 'the hub answered the login without a session cookie');
    return new HubClient(baseUrl, undefined, { ...csrf, cookie });
  }

  static from(options: ClientOptions, env: NodeJS.ProcessEnv = process.env): HubClient {
    const baseUrl = (options.hub ?? env.CAIRN_HUB_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
    let token = options.token ?? env.CAIRN_TOKEN;
    if (!token) {
      const file = join(options.data ?? env.CAIRN_DATA_DIR ?? './data', ADMIN_TOKEN_FILE);
      if (existsSync(file)) token = readFileSync(file, 'utf8').trim();
    }
    return new HubClient(baseUrl, token);
  }

  async request<T>(method: string, path: string, body?: unknown, init: RequestOptions = {}): Promise<T> {
    const response = await this.send(method, path, body, init);
    return (await response.text().then((text) => (text ? safeJson(text) : undefined))) as T;
  }

  /** The answer to a request, which succeeded; an error answer throws an ApiError. */
  private async send(method: string, path: string, body?: unknown, init: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...this.extraHeaders };
    if (this.token) headers.authorization = `Bearer ${this.token}`;
    let payload: RequestInit['body'];
    if (init.raw) {
      headers['content-type'] = init.contentType ?? 'application/octet-stream';
      headers['content-length'] = String(init.raw.length);
      payload = init.onProgress ? progressStream(init.raw, init.onProgress) : init.raw;
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    let response: Response;
    try {
      // A streamed body needs `duplex: 'half'` (undici); a buffered one ignores it.
      response = await fetch(`${this.baseUrl}${path}`, { method, headers, body: payload, duplex: 'half' } as RequestInit);
    } catch (err) {
      throw new ApiError(0, 'CAIRN_HUB_UNREACHABLE', `cannot reach the hub at ${this.baseUrl}: ${(err as Error & { cause?: Error }).cause?.message ?? (err as Error).message}`);
    }
    if (!response.ok) {
      const text = await response.text();
      const e = (safeJson(text) ?? {}) as { code?: string; message?: string };
      throw new ApiError(response.status, e.code ?? `HTTP_${response.status}`, e.message ?? (text.slice(0, 200) || response.statusText));
    }
    return response;
  }

  async download(path: string): Promise<Buffer> {
    return Buffer.from(await (await this.send('GET', path)).arrayBuffer());
  }
}

interface RequestOptions {
  raw?: Buffer | Uint8Array;
  contentType?: string;
  onProgress?: (sent: number, total: number) => void;
}

/** The bytes as a stream that reports how much of them fetch has read. */
function progressStream(bytes: Uint8Array, onProgress: (sent: number, total: number) => void): ReadableStream<Uint8Array> {
  const CHUNK = 256 * 1024;
  let offset = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (offset >= bytes.length) {
        controller.close();
        return;
      }
      const chunk = bytes.subarray(offset, Math.min(bytes.length, offset + CHUNK));
      offset += chunk.length;
      controller.enqueue(chunk);
      onProgress(offset, bytes.length);
    },
  });
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
