/**
 * The broker port: the only way hub modules reach MQTT. Two implementations: the embedded aedes
 * broker (here, the default) and an mqtt.js client of an external broker (external-broker.ts,
 * `mqtt.broker`), which is why no module may touch aedes or mqtt.js directly.
 */
import { createServer, type Server, type AddressInfo } from 'node:net';
import { createServer as createTlsServer, type TlsOptions } from 'node:tls';
import type { Duplex } from 'node:stream';
import { Aedes } from 'aedes';
import type { Logger } from 'pino';
import { aclHooks, type AclObserver, type DeviceAuthenticator, type PublishRate } from './broker-acl.js';

export interface PublishOptions {
  qos: 0 | 1;
  retain: boolean;
}

/**
 * Receives one message. The broker awaits the returned promise before it acknowledges a QoS 1
 * publish to the device, so a handler that stores the message before resolving guarantees that
 * nothing acknowledged is lost. A handler that throws or rejects makes the broker refuse the
 * publish (the device's connection is closed without a PUBACK, and the device sends it again
 * after reconnecting); a handler drops a message it rejects on purpose by returning normally.
 */
export type MessageHandler = (topic: string, payload: Buffer) => void | Promise<void>;

export interface BrokerPort {
  publish(topic: string, payload: Buffer, options: PublishOptions): Promise<void>;
  /** Receives device publishes matching `filter` (`+` and `#` wildcards), before they are acknowledged. */
  subscribe(filter: string, handler: MessageHandler): Promise<void>;
  /** Clients connected to the broker; null when the hub cannot know (an external broker). */
  connectedClients(): number | null;
  /** Forcibly disconnects a client (a revoked device); an external broker cannot, see external-broker.ts. */
  disconnect(clientId: string): void;
}

export interface EmbeddedBroker {
  kind: 'embedded';
  port: BrokerPort;
  /** Starts accepting MQTT over TCP (over TLS when the broker has `tls`); resolves with the bound address. */
  listen(port: number, host: string): Promise<AddressInfo>;
  /** Serves one MQTT connection over any duplex stream, under the same access control (tests use in-memory streams). */
  accept(stream: Duplex): void;
  close(): Promise<void>;
}

export interface EmbeddedBrokerOptions {
  logger: Logger;
  observer: AclObserver;
  authenticator: DeviceAuthenticator;
  rate: PublishRate;
  /** MQTT over TLS; a failed handshake (wrong CA, no client certificate when one is required) is a counted `tls_handshake` denial. */
  tls?: TlsOptions;
}

export async function createEmbeddedBroker({ logger, observer, authenticator, rate, tls }: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
  const hooks = aclHooks(observer, authenticator, rate);
  const handlers: { filter: string; handler: MessageHandler }[] = [];

  /**
   * aedes writes the PUBACK of a QoS 1 publish before it routes the message to subscribers, but
   * only after `authorizePublish` has called back. So the hub's handlers run here, after the
   * access check: a message is stored before the device learns it was received. Handlers run in
   * order, each after the previous one settled; the result is undefined when every matching
   * handler returned synchronously (no promise to wait for: this runs for every device message),
   * else a promise that rejects if any handler threw or rejected.
   */
  const deliverBeforeAck = (topic: string, payload: Buffer): Promise<void> | undefined => {
    let chain: Promise<void> | undefined;
    for (const { filter, handler } of handlers) {
      if (!topicMatches(filter, topic)) continue;
      if (chain) {
        chain = chain.then(() => handler(topic, payload));
        continue;
      }
      try {
        chain = handler(topic, payload) ?? undefined;
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    return chain;
  };

  const aedes = await Aedes.createBroker({
    ...hooks,
    authorizePublish(client, packet, callback) {
      hooks.authorizePublish(client, packet, (denied) => {
        if (denied) return callback(denied);
        const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
        const stored = deliverBeforeAck(packet.topic, payload);
        if (!stored) return callback(null);
        stored.then(
          () => callback(null),
          (err: Error) => {
            logger.error({ err, topic: packet.topic }, 'storing a device message failed; refusing it so the device retries');
            callback(new Error('message not stored'));
          },
        );
      });
    },
    drainTimeout: 10_000, // a frozen subscriber must not stall delivery to everyone else
    maxTopicLevels: 8,
    keepaliveLimit: 600,
    maxClientsIdLength: 64,
    concurrency: 1000,
  });
  aedes.on('clientError', (client, err) => logger.debug({ clientId: client.id, err: err.message }, 'mqtt client error'));
  aedes.on('connectionError', (client, err) => logger.debug({ clientId: client?.id, err: err.message }, 'mqtt connection error'));

  const clients = new Map<string, { close(): void }>();
  aedes.on('clientReady', (client) => clients.set(client.id, client));
  aedes.on('clientDisconnect', (client) => {
    if (clients.get(client.id) === client) clients.delete(client.id);
  });

  let server: Server | null = null;
  const port: BrokerPort = {
    publish: (topic, payload, { qos, retain }) =>
      new Promise((resolve, reject) =>
        aedes.publish({ cmd: 'publish', topic, payload, qos, retain, dup: false }, (err) => (err ? reject(err) : resolve())),
      ),
    subscribe: async (filter, handler) => {
      handlers.push({ filter, handler });
    },
    connectedClients: () => aedes.connectedClients,
    disconnect: (clientId) => clients.get(clientId)?.close(),
  };

  return {
    kind: 'embedded',
    port,
    accept: (stream) => aedes.handle(stream),
    listen: (portNumber, host) =>
      new Promise((resolve, reject) => {
        if (tls) {
          const tlsServer = createTlsServer(tls, aedes.handle);
          tlsServer.on('tlsClientError', (err) => {
            observer.denied('connect', 'tls_handshake', null);
            logger.debug({ err: err.message }, 'mqtt tls handshake failed');
          });
          server = tlsServer;
        } else {
          server = createServer(aedes.handle);
        }
        server.once('error', reject);
        server.listen(portNumber, host, () => resolve(server!.address() as AddressInfo));
      }),
    close: async () => {
      if (server) {
        const s = server;
        server = null;
        await new Promise<void>((resolve) => {
          s.close(() => resolve());
          for (const c of clients.values()) c.close();
        });
      }
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
    },
  };
}

/**
 * MQTT topic-filter matching (`+` one level, `#` the rest, including the parent level: `a/#`
 * matches `a`). Runs for every device message and handler, so it walks the strings in place
 * instead of splitting them (splitting was 6 % of the hub's CPU at fleet ingest rates).
 */
export function topicMatches(filter: string, topic: string): boolean {
  let f = 0;
  let t = 0;
  for (;;) {
    const fEnd = levelEnd(filter, f);
    if (fEnd - f === 1 && filter.charCodeAt(f) === HASH) return true;
    const tEnd = levelEnd(topic, t);
    const wildcard = fEnd - f === 1 && filter.charCodeAt(f) === PLUS;
    if (!wildcard && (fEnd - f !== tEnd - t || !topic.startsWith(filter.slice(f, fEnd), t))) return false;
    const filterDone = fEnd === filter.length;
    const topicDone = tEnd === topic.length;
    if (filterDone) return topicDone;
    if (topicDone) return filter.charCodeAt(fEnd + 1) === HASH && levelEnd(filter, fEnd + 1) === fEnd + 2; // the next filter level is `#`
    f = fEnd + 1;
    t = tEnd + 1;
  }
}

const HASH = 0x23;
const PLUS = 0x2b;
const levelEnd = (s: string, from: number): number => {
  const i = s.indexOf('/', from);
  return i === -1 ? s.length : i;
};
