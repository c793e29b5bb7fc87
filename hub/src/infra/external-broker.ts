/**
 * The broker port over an external MQTT broker (`mqtt.broker`, `cairn hub --broker URL`): the
 * hub is an mqtt.js client of Mosquitto (or any MQTT 3.1.1 broker) instead of embedding aedes.
 *
 * Contracts, the same as the embedded broker's where a client can keep them:
 * - Nothing acknowledged is lost. The `inbound` connection's session is persistent (clean:
 *   false, a fixed client id: its username), so the broker queues device messages while the hub
 *   is away; and the hub PUBACKs a message only after its handler stored it (`handleMessage`,
 *   which mqtt.js awaits before writing the PUBACK). A handler that fails drops the connection
 *   without a PUBACK: the broker delivers the message again after the reconnect (the handlers
 *   dedupe).
 * - Publishing goes through a second, `outbound` connection. mqtt.js reads one packet at a time
 *   and waits for `handleMessage` before the next, so a handler awaiting its own publish (blob
 *   chunks answer a chunk request) would wait forever for a PUBACK queued behind it on the same
 *   connection.
 * - Access control is the broker's (its files come from `cairn broker config`, mirroring
 *   broker-acl.ts). The hub still drops, counts and logs messages of devices that are no longer
 *   active, which covers a revoked device until the broker reloads its files.
 * - `disconnect` cannot be done by a client. Revocation with an external broker means: the hub
 *   ignores the device at once; the operator regenerates the broker's files and reloads it
 *   (Mosquitto: SIGHUP), and Mosquitto 2 then closes the device's session (it checks connected
 *   clients against the reloaded password file) and refuses it from then on.
 * - Retained desired documents are published by the hub like with aedes, and re-published at
 *   start (deployments module), so a broker that lost them gets them back.
 */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { parseDeviceTopic } from '@cairn/shared';
import type { AclObserver } from './broker-acl.js';
import type { BrokerAccount } from './broker-account.js';
import { topicMatches, type BrokerPort, type MessageHandler } from './broker.js';

export interface ExternalBroker {
  kind: 'external';
  port: BrokerPort;
  /** The broker's URL (never with credentials). */
  url: string;
  /** Connects; resolves when both connections are up, rejects on a refusal or when the broker cannot be reached within `connectTimeoutMs`. */
  start(): Promise<void>;
  close(): Promise<void>;
}

export interface ExternalBrokerOptions {
  url: string;
  account: BrokerAccount;
  logger: Logger;
  observer: AclObserver;
  /** Whether a device may still talk to the hub (enrollment: active, not revoked). */
  deviceActive: (deviceId: string) => boolean;
  /** TLS material for `mqtts://` (CA to trust, and a client certificate if the broker wants one). */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
  connectTimeoutMs?: number;
}

type Role = keyof BrokerAccount['usernames'];

export function createExternalBroker({ url, account, logger, observer, deviceActive, tls, connectTimeoutMs = 30_000 }: ExternalBrokerOptions): ExternalBroker {
  const handlers: { filter: string; handler: MessageHandler }[] = [];
  let closing = false;

  const connection = (role: Role): MqttClient => {
    const username = account.usernames[role];
    const options: IClientOptions = {
      protocolVersion: 4,
      clientId: username,
      username,
      password: account.password,
      clean: role === 'outbound', // only the inbound session holds what devices were acknowledged for
      keepalive: 30,
      connectTimeout: 10_000,
      reconnectPeriod: 1000, // the hub's own two connections, not a fleet: a fixed interval cannot stampede
      reconnectOnConnackError: false,
      manualConnect: true,
      resubscribe: false, // the inbound subscriptions are (re)made on every connect below
      queueQoSZero: false,
      ...(tls?.ca ? { ca: tls.ca } : {}),
      ...(tls?.cert && tls.key ? { cert: tls.cert, key: tls.key } : {}),
    };
    const client = mqtt.connect(url, options);
    let up = false;
    client.on('connect', (connack) => {
      up = true;
      logger.info({ url, role, sessionPresent: connack.sessionPresent }, 'connected to the external broker');
    });
    client.on('close', () => {
      if (up && !closing) logger.warn({ url, role }, "lost the external broker; reconnecting (device messages wait in the hub's session)");
      up = false;
    });
    client.on('error', (err) => logger.warn({ url, role, err: err.message }, 'external broker connection error'));
    return client;
  };
  const inbound = connection('inbound');
  const outbound = connection('outbound');

  const dispatch = async (topic: string, payload: Buffer): Promise<void> => {
    const sender = parseDeviceTopic(topic)?.deviceId;
    if (sender !== undefined && !deviceActive(sender)) {
      observer.denied('publish', 'revoked', sender, topic);
      return; // acknowledged and dropped on purpose
    }
    for (const { filter, handler } of handlers) {
      if (topicMatches(filter, topic)) await handler(topic, payload);
    }
  };
  inbound.handleMessage = (packet, callback) => {
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    dispatch(packet.topic, payload).then(
      () => callback(),
      (err: Error) => {
        logger.error({ err, topic: packet.topic }, 'storing a device message failed; not acknowledging it, reconnecting so that the broker delivers it again');
        inbound.stream.destroy();
      },
    );
  };
  const subscribe = (filters: string[]) => {
    if (filters.length === 0) return;
    inbound.subscribe(filters, { qos: 1 }, (err, granted) => {
      const refused = granted?.filter((g) => g.qos === 128).map((g) => g.topic) ?? [];
      if (err || refused.length > 0) logger.error({ err: err?.message, refused }, "the external broker refused the hub's subscriptions; check its ACL (cairn broker config)");
    });
  };
  // Re-subscribing on every connect also makes the broker send the retained presence and
  // reported messages again, so the hub learns who is online after its own restart.
  inbound.on('connect', () => subscribe(handlers.map((h) => h.filter)));

  const port: BrokerPort = {
    // While disconnected mqtt.js keeps QoS 1 publishes in memory and sends them after the reconnect.
    publish: async (topic, payload, { qos, retain }) => {
      await outbound.publishAsync(topic, payload, { qos, retain });
    },
    subscribe: async (filter, handler) => {
      handlers.push({ filter, handler });
      if (inbound.connected) subscribe([filter]);
    },
    connectedClients: () => null,
    disconnect: (clientId) => {
      logger.warn({ clientId }, 'an external broker session cannot be closed by the hub: the hub ignores this device from now on; regenerate the broker files (cairn broker config) and reload the broker to shut it out');
    },
  };

  const start = (client: MqttClient): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => fail(new Error(`cannot reach the external broker at ${url} within ${connectTimeoutMs / 1000} s`)), connectTimeoutMs);
      const onConnect = () => {
        clearTimeout(timer);
        client.off('error', onError);
        resolve();
      };
      const onError = (err: Error & { code?: unknown }) => {
        // A CONNACK refusal is final (bad hub credentials, ACL); anything else is retried until the timeout.
        if (typeof err.code === 'number') fail(new Error(`the external broker at ${url} refused the hub (CONNACK ${err.code}: ${err.message}); check ${account.file} and the broker's password file`));
      };
      const fail = (err: Error) => {
        clearTimeout(timer);
        client.off('connect', onConnect);
        client.off('error', onError);
        client.end(true);
        reject(err);
      };
      client.once('connect', onConnect);
      client.on('error', onError);
      client.connect();
    });

  /**
   * A graceful DISCONNECT keeps the inbound session (and what the broker queues in it) for the
   * next start. mqtt.js's graceful end waits for in-flight publishes, which never finish without
   * a broker: then, and after 5 s at most, the connection is dropped instead (the deployments
   * module re-publishes desired documents at the next start).
   */
  const end = (client: MqttClient): Promise<void> =>
    new Promise<void>((resolve) => {
      if (!client.connected) return client.end(true, {}, () => resolve());
      const force = setTimeout(() => client.end(true, {}, () => resolve()), 5000);
      client.end(false, {}, () => {
        clearTimeout(force);
        resolve();
      });
    });

  return {
    kind: 'external',
    port,
    url,
    start: async () => {
      await Promise.all([start(outbound), start(inbound)]).catch(async (err: Error) => {
        closing = true;
        await Promise.all([end(inbound), end(outbound)]);
        throw err;
      });
    },
    close: async () => {
      closing = true;
      await Promise.all([end(inbound), end(outbound)]);
    },
  };
}
