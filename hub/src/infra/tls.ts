/**
 * The hub's TLS material (`tls.*` in the config), read once at start: the same certificate and
 * key serve HTTPS and the embedded broker's MQTT over TLS; `ca` is what device client
 * certificates must chain to (`tls.requireClientCert`) and what the hub trusts for an external
 * `mqtts://` broker. A path that cannot be read fails the start with the path named.
 */
import { readFileSync } from 'node:fs';
import type { TlsOptions } from 'node:tls';
import { ConfigError, tlsEnabled, type HubConfig } from './config.js';

export interface HubTls {
  /** The hub's certificate and key: HTTPS and the embedded broker's TLS listener; null without TLS. */
  server: { cert: Buffer; key: Buffer } | null;
  ca?: Buffer;
  requireClientCert: boolean;
}

export function loadHubTls(config: HubConfig): HubTls {
  const problems: string[] = [];
  const read = (what: string, path: string | undefined): Buffer | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (err) {
      problems.push(`/tls/${what}: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      return undefined;
    }
  };
  const cert = read('cert', config.tls.cert);
  const key = read('key', config.tls.key);
  const ca = read('ca', config.tls.ca);
  if (problems.length > 0) throw new ConfigError(problems);
  return { server: tlsEnabled(config) && cert && key ? { cert, key } : null, ...(ca ? { ca } : {}), requireClientCert: config.tls.requireClientCert };
}

/** Options of the embedded broker's TLS listener: with `requireClientCert`, a client without a certificate from `ca` fails the handshake. */
export function mqttServerTls(tls: HubTls & { server: NonNullable<HubTls['server']> }): TlsOptions {
  return { cert: tls.server.cert, key: tls.server.key, ...(tls.ca ? { ca: tls.ca } : {}), requestCert: tls.requireClientCert, rejectUnauthorized: tls.requireClientCert };
}
