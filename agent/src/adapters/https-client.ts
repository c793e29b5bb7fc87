/**
 * The agent's TLS client material and its one HTTP(S) request (enrollment), so that a hub with
 * a private CA is trusted through `tls.ca` (Node's fetch cannot take a CA per request). The
 * same material serves MQTT over TLS (components/connection.ts).
 */
import { readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';

export interface ClientTls {
  /** CA certificates the hub's (or broker's) certificate must chain to; the system's when absent. */
  ca?: Buffer;
  /** A client certificate and key, for a broker that requires mutual TLS. */
  cert?: Buffer;
  key?: Buffer;
}

/** Reads the PEM files the agent config names (`tls.ca`, `tls.cert`, `tls.key`); a missing file throws with its path. */
export function loadClientTls(paths: { ca?: string; cert?: string; key?: string } | undefined): ClientTls | undefined {
  if (!paths) return undefined;
  const read = (path: string | undefined) => (path === undefined ? undefined : readFileSync(path));
  const [ca, cert, key] = [read(paths.ca), read(paths.cert), read(paths.key)];
  return { ...(ca ? { ca } : {}), ...(cert ? { cert } : {}), ...(key ? { key } : {}) };
}

export interface JsonAnswer {
  status: number;
  body: unknown;
  headers: IncomingHttpHeaders;
}

/** POSTs `body` as JSON; resolves with the status and the parsed body (undefined when not JSON); rejects on a network or TLS failure (`err.code`). */
export function postJson(url: string, body: unknown, options: { tls?: ClientTls; timeoutMs: number; headers?: Record<string, string> }): Promise<JsonAnswer> {
  const target = new URL(url);
  const data = Buffer.from(JSON.stringify(body));
  const request = target.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = request(
      target,
      { method: 'POST', headers: { ...options.headers, 'content-type': 'application/json', 'content-length': data.length }, timeout: options.timeoutMs, ...(target.protocol === 'https:' ? options.tls : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          let parsed: unknown;
          try {
            parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end(data);
  });
}
