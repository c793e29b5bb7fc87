/**
 * Records from a topic on a LOCAL MQTT broker (a PLC gateway or a sensor hub on the same
 * machine or cell network publishing one record per message). This is a second, independent
 * MQTT client: the hub connection stays dedicated to the hub.
 *
 * Contracts:
 * - One message is one record (records.ts). MQTT cannot be pushed back on, so when the
 *   intake's queue is full the message is refused as `overloaded` and counted.
 * - The broker being down is not an error of the agent: mqtt.js reconnects every
 *   `reconnectMs` (a fixed period is fine for one client on a local broker), resubscribes, and
 *   the state changes are logged once each, never the password.
 */
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import type { RecordIntake } from './record-intake.js';

export interface MqttSourceOptions {
  url: string;
  topic: string;
  qos: 0 | 1;
  clientId: string;
  username?: string;
  password?: string;
  reconnectMs?: number;
  intake: RecordIntake;
  logger: Logger;
}

export class MqttSource {
  private client: MqttClient | null = null;
  private connectedOnce = false;
  private subscribed = false;
  private lastError: string | null = null;
  private messages = 0;

  constructor(private readonly options: MqttSourceOptions) {}

  start(): void {
    const { url, topic, qos, clientId, username, password, intake, logger } = this.options;
    const client = mqtt.connect(url, {
      clientId,
      clean: true,
      protocolVersion: 4,
      reconnectPeriod: this.options.reconnectMs ?? 2000,
      connectTimeout: 10_000,
      // Subscribed on every connect below (a clean session forgets subscriptions).
      resubscribe: false,
      ...(username !== undefined ? { username } : {}),
      ...(password !== undefined ? { password } : {}),
    });
    client.on('connect', () => {
      this.lastError = null;
      this.subscribed = false;
      client.subscribe(topic, { qos }, (err, granted) => {
        const refused = granted?.some((g) => g.qos === 128);
        if (err || refused) logger.error({ topic, err: err?.message }, 'the local broker refused the source subscription');
        else {
          this.subscribed = true;
          logger.info({ url, topic, reconnect: this.connectedOnce }, 'source subscribed');
        }
        this.connectedOnce = true;
      });
    });
    client.on('message', (_topic, payload) => {
      this.messages++;
      intake.offer(payload.toString('utf8'));
    });
    client.on('error', (err) => {
      if (err.message !== this.lastError) logger.warn({ url, err: err.message }, 'local source broker error');
      this.lastError = err.message;
    });
    client.on('offline', () => logger.warn({ url }, 'local source broker unreachable; retrying'));
    this.client = client;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    if (client) await client.endAsync(true);
  }

  /** Whether the local broker is connected and the topic subscribed; messages received since start. */
  get stats(): { connected: boolean; subscribed: boolean; messages: number } {
    const connected = this.client?.connected ?? false;
    return { connected, subscribed: connected && this.subscribed, messages: this.messages };
  }
}
