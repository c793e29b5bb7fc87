/**
 * The agent's one MQTT connection (DESIGN §2), with mqtt.js speaking MQTT 3.1.1.
 *
 * - clientId = username = deviceId, the password from enrollment (device-identity.ts), clean session: after every connect the agent subscribes to
 *   its own `desired`, `blob/res` and `cmd` topics again, then publishes its birth.
 * - Availability comes from the Last Will: retained QoS 1 `{online:false, epoch}`. Each
 *   connection attempt takes a new epoch (persisted before the CONNECT that carries it), and the
 *   birth `{online:true, agentVersion, epoch, ts}` repeats that epoch, so the hub can drop a
 *   stale Will that races a newer birth.
 * - Reconnects are ours, not mqtt.js's (its reconnectPeriod is a fixed interval, and a fleet
 *   would reconnect in lock-step after a hub restart): `reconnectPeriod: 0`, and after every
 *   close we wait a full-jitter exponential backoff, random(0, min(cap, base·2^attempt)), then
 *   call `client.connect()` on the same client so its in-memory QoS 1 store is kept.
 * - A CONNACK refusal (bad credentials, not authorised, ...) is not retried: it is reported in
 *   the status and logged, and the agent keeps serving its model offline. Only "server
 *   unavailable" is retried.
 * - A graceful stop publishes the offline presence itself: `end()` sends DISCONNECT, which makes
 *   the broker discard the Will.
 */
import { EventEmitter } from 'node:events';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { deviceTopic, encodePayload, parseDeviceTopic, type HubToAgentKind, type PayloadOf, type AgentToHubKind, type JsonTopicKind } from '@cairn/shared';
import type { StateStore } from './state-store.js';
import type { ClientTls } from '../adapters/https-client.js';
import type { DropCounter } from './drop-counter.js';

/** JSON kinds the agent publishes; each has a fixed QoS and retain flag (DESIGN §2 table). */
export type PublishKind = Extract<AgentToHubKind, JsonTopicKind>;
const RETAINED: Record<PublishKind, boolean> = {
  presence: true,
  reported: true,
  telemetry: false,
  events: false,
  'blob/req': false,
  'cmd/res': false,
};
const SUBSCRIPTIONS: HubToAgentKind[] = ['desired', 'blob/res', 'cmd'];

/** CONNACK return codes worth retrying (MQTT 3.1.1 §3.2.2.3): 3 = server unavailable. */
const RETRYABLE_CONNACK = new Set([3]);

export interface BackoffOptions {
  baseMs: number;
  capMs: number;
}
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 1000, capMs: 30_000 };

/** Full jitter (AWS architecture blog, "Exponential Backoff And Jitter"). */
export function backoffDelay(attempt: number, { baseMs, capMs }: BackoffOptions, random: () => number = Math.random): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random() * ceiling);
}

export interface ConnectionOptions {
  deviceId: string;
  mqttUrl: string;
  agentVersion: string;
  state: StateStore;
  logger: Logger;
  clock: () => number;
  drops: DropCounter;
  backoff?: BackoffOptions;
  keepaliveSec?: number;
  /** The MQTT password issued at enrollment, read when the connection starts; none: connect without (the hub refuses). */
  password?: () => string | undefined;
  /** For `mqtts://`: the CA to trust and an optional client certificate. */
  tls?: ClientTls;
}

export type ConnectionEvents = {
  /** Connected, subscribed and birth sent (in flight). */
  connect: [];
  disconnect: [];
  /** A message on one of this device's hub→agent topics. */
  message: [kind: HubToAgentKind, payload: Buffer];
};

export type ConnectionState = 'stopped' | 'connecting' | 'connected' | 'waiting' | 'refused';

export class Connection extends EventEmitter<ConnectionEvents> {
  private client: MqttClient | null = null;
  private attempt = 0;
  private timer: NodeJS.Timeout | null = null;
  private stopping = false;
  private epoch = 0;
  private _state: ConnectionState = 'stopped';
  private _lastError: string | null = null;
  private _connects = 0;
  private connectCalled = false;

  constructor(private readonly options: ConnectionOptions) {
    super();
  }

  /**
   * Connected and not stopping. stop() drops the client at once but stays `connected` while it
   * sends the offline presence; a publish then rejects at once, and the outbox, which re-pumps on
   * every rejection, would spin on it without yielding (a hung, 100 % CPU agent).
   */
  get connected(): boolean {
    return this._state === 'connected' && this.client !== null;
  }
  get status(): { state: ConnectionState; epoch: number; connects: number; lastError: string | null } {
    return { state: this._state, epoch: this.epoch, connects: this._connects, lastError: this._lastError };
  }

  /** Starts connecting in the background; never waits for the broker. */
  async start(): Promise<void> {
    const { deviceId, mqttUrl } = this.options;
    const clientOptions: IClientOptions = {
      protocolVersion: 4,
      clientId: deviceId,
      username: deviceId,
      ...(this.options.password?.() !== undefined ? { password: this.options.password() } : {}),
      clean: true,
      keepalive: this.options.keepaliveSec ?? 30,
      connectTimeout: 15_000,
      reconnectPeriod: 0,
      reconnectOnConnackError: false,
      manualConnect: true,
      resubscribe: false,
      // QoS 0 is not used; never let it queue without bound while offline.
      queueQoSZero: false,
      will: { topic: deviceTopic(deviceId, 'presence'), payload: Buffer.alloc(0), qos: 1, retain: true },
      ...this.options.tls,
    };
    const client = mqtt.connect(mqttUrl, clientOptions);
    this.client = client;
    client.on('error', (err) => this.onError(err));
    client.on('connect', () => void this.onConnect(client));
    client.on('close', () => this.onClose());
    client.on('message', (topic, payload) => this.onMessage(topic, payload));
    this.stopping = false;
    void this.connectNow();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const client = this.client;
    if (!client) return;
    this.client = null;
    if (this._state === 'connected') {
      const offline = encodePayload('presence', { online: false, epoch: this.epoch, ts: this.options.clock() });
      await withTimeout(client.publishAsync(deviceTopic(this.options.deviceId, 'presence'), offline, { qos: 1, retain: true }), 2000).catch((err: Error) =>
        this.options.logger.warn({ err }, 'could not publish offline presence on stop'),
      );
    }
    if (this.connectCalled) {
      // end(false) waits for what is in flight to be acknowledged; a broker that never answers
      // must not hold the stop, so the socket is destroyed after a short grace period.
      const graceful = this._state === 'connected';
      const ended = await withTimeout(client.endAsync(!graceful), 2000).then(
        () => true,
        () => false,
      );
      if (!ended) client.stream?.destroy();
    }
    this._state = 'stopped';
  }

  /**
   * Publishes a payload of `kind` (checked against its schema before it leaves) at QoS 1 with the
   * retain flag the protocol fixes for that kind. Resolves on PUBACK. While offline mqtt.js keeps
   * the message in memory and sends it after the next connect; what must survive a restart goes
   * through the outbox instead.
   */
  publish<K extends PublishKind>(kind: K, value: PayloadOf<K>): Promise<void> {
    let payload: Buffer;
    try {
      payload = encodePayload(kind, value);
    } catch (err) {
      this.options.logger.error({ err, kind }, 'refusing to publish an invalid payload');
      return Promise.reject(err as Error);
    }
    return this.publishEncoded(kind, payload);
  }

  /** Publishes bytes already encoded (and so validated) by `encodePayload(kind, …)`. */
  publishEncoded(kind: PublishKind, payload: Buffer): Promise<void> {
    const client = this.client;
    if (!client) return Promise.reject(new Error('the connection is stopped'));
    return client.publishAsync(deviceTopic(this.options.deviceId, kind), payload, { qos: 1, retain: RETAINED[kind] }).then(() => undefined);
  }

  private async connectNow(): Promise<void> {
    const client = this.client;
    if (!client || this.stopping) return;
    this._state = 'connecting';
    // The epoch goes in the Will of this very CONNECT, so it must be durable first.
    await this.options.state
      .update((s) => {
        s.epoch += 1;
      })
      .catch(() => undefined);
    if (this.client !== client || this.stopping) return;
    this.epoch = this.options.state.state.epoch;
    client.options.will = {
      topic: deviceTopic(this.options.deviceId, 'presence'),
      payload: encodePayload('presence', { online: false, epoch: this.epoch }),
      qos: 1,
      retain: true,
    };
    this.options.logger.debug({ epoch: this.epoch, attempt: this.attempt }, 'connecting');
    this.connectCalled = true;
    client.connect();
  }

  private async onConnect(client: MqttClient): Promise<void> {
    const { deviceId, logger } = this.options;
    this.attempt = 0;
    this._lastError = null;
    try {
      const granted = await client.subscribeAsync(
        SUBSCRIPTIONS.map((kind) => deviceTopic(deviceId, kind)),
        { qos: 1 },
      );
      for (const grant of granted) {
        if (grant.qos === 128) logger.error({ topic: grant.topic }, 'the broker refused a subscription');
      }
    } catch (err) {
      // The connection dropped while subscribing; the next connect subscribes again.
      logger.debug({ err }, 'subscribe failed');
      return;
    }
    if (this.client !== client || !client.connected) return;
    this._state = 'connected';
    this._connects += 1;
    logger.info({ epoch: this.epoch }, 'connected');
    const birth = encodePayload('presence', { online: true, agentVersion: this.options.agentVersion, epoch: this.epoch, ts: this.options.clock() });
    client.publishAsync(deviceTopic(deviceId, 'presence'), birth, { qos: 1, retain: true }).catch((err: Error) => logger.debug({ err }, 'birth not acknowledged'));
    this.emit('connect');
  }

  private onError(err: Error & { code?: unknown }): void {
    this._lastError = err.message;
    if (typeof err.code === 'number' && !RETRYABLE_CONNACK.has(err.code)) {
      // A CONNACK refusal: mqtt.js closes the stream next; do not come back.
      this._state = 'refused';
      this.options.logger.error({ code: err.code }, `the broker refused the connection (${err.message}); not retrying until restart`);
      return;
    }
    this.options.logger.warn({ code: err.code }, `mqtt: ${err.message}`);
  }

  private onClose(): void {
    const wasConnected = this._state === 'connected';
    if (this.stopping || !this.client) return;
    if (wasConnected) {
      this.options.logger.warn('disconnected from the broker');
      this._state = 'waiting';
      this.emit('disconnect');
    }
    if (this._state === 'refused') return;
    this._state = 'waiting';
    if (this.timer) return;
    const delay = backoffDelay(this.attempt, this.options.backoff ?? DEFAULT_BACKOFF);
    this.attempt += 1;
    this.options.logger.debug({ delay, attempt: this.attempt }, 'reconnecting after backoff');
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.connectNow();
    }, delay);
  }

  private onMessage(topic: string, payload: Buffer): void {
    const parsed = parseDeviceTopic(topic);
    if (!parsed || parsed.deviceId !== this.options.deviceId || !SUBSCRIPTIONS.includes(parsed.kind as HubToAgentKind)) {
      this.options.drops.drop('unknown', 'unexpected_topic', `message on ${topic.slice(0, 200)}`);
      return;
    }
    this.emit('message', parsed.kind as HubToAgentKind, payload);
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms`)), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e as Error);
      },
    );
  });
}
