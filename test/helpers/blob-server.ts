/**
 * Agent-test infrastructure over a real broker: an aedes broker on a loopback TCP port, and a
 * tiny hub stand-in that answers `blob/req` from in-memory Buffers the way the hub does (one
 * `blob/res` frame per chunk, `{digest, index, total}`, BLOB_CHUNK_BYTES each). Only for agent
 * tests — the real hub has its own blob service. Faults can be injected: dropped frames, a
 * server that goes silent after N frames, error frames.
 */
import net from 'node:net';
import { Aedes, type AedesOptions } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import {
  BLOB_CHUNK_BYTES,
  decodePayload,
  deviceTopic,
  encodeBlobFrame,
  encodePayload,
  fleetSubscription,
  parseDeviceTopic,
  type BlobRequestT,
  type DeviceEventT,
  type JsonTopicKind,
  type PayloadOf,
  type SignedDesiredT,
} from '@cairn/shared';

export interface TestBroker {
  url: string;
  port: number;
  /** Closes the broker and every client connection (a broker crash, as far as clients can tell). */
  close(): Promise<void>;
}

/** Starts an aedes broker on 127.0.0.1 (`port` 0 picks a free one; pass the old port to "restart"). */
export async function startBroker(port = 0, options: AedesOptions = {}): Promise<TestBroker> {
  const broker = await Aedes.createBroker(options);
  const server = net.createServer(broker.handle);
  const sockets = new Set<net.Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
  const bound = (server.address() as net.AddressInfo).port;
  let closed = false;
  return {
    url: `mqtt://127.0.0.1:${bound}`,
    port: bound,
    async close() {
      if (closed) return;
      closed = true;
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => broker.close(() => resolve()));
    },
  };
}

/** A plain test client (the "hub" side): publishes desired documents, records what agents send. */
export class HubProbe {
  readonly received: Array<{ deviceId: string; kind: string; payload: Buffer }> = [];

  private constructor(readonly client: MqttClient) {}

  static async connect(url: string, clientId = `probe-${Math.random().toString(36).slice(2, 10)}`): Promise<HubProbe> {
    const client = await mqtt.connectAsync(url, { protocolVersion: 4, clientId, reconnectPeriod: 0 });
    client.on('error', () => undefined);
    const probe = new HubProbe(client);
    client.on('message', (topic, payload) => {
      const parsed = parseDeviceTopic(topic);
      if (parsed) probe.received.push({ deviceId: parsed.deviceId, kind: parsed.kind, payload });
    });
    await client.subscribeAsync(['presence', 'reported', 'telemetry', 'events', 'cmd/res'].map((k) => fleetSubscription(k as 'events')), { qos: 1 });
    return probe;
  }

  /** Decoded payloads of `kind` from `deviceId`, in arrival order (invalid ones are skipped). */
  messages<K extends JsonTopicKind>(kind: K, deviceId: string): Array<PayloadOf<K>> {
    const out: Array<PayloadOf<K>> = [];
    for (const m of this.received) {
      if (m.kind !== kind || m.deviceId !== deviceId || m.payload.length === 0) continue;
      const decoded = decodePayload(kind, m.payload);
      if (decoded.ok) out.push(decoded.value);
    }
    return out;
  }

  events(deviceId: string, type?: DeviceEventT['type']): DeviceEventT[] {
    return this.messages('events', deviceId).filter((e) => type === undefined || e.type === type);
  }

  async publishDesired(deviceId: string, desired: SignedDesiredT): Promise<void> {
    await this.client.publishAsync(deviceTopic(deviceId, 'desired'), encodePayload('desired', desired), { qos: 1, retain: true });
  }

  async publishRaw(topic: string, payload: string | Buffer, retain = false): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1, retain });
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

export interface BlobServerOptions {
  /** Return true to silently drop the frame of chunk `index` (`attempt` counts its sends from 1). */
  drop?: (index: number, attempt: number) => boolean;
  /** Go silent after sending this many frames (requests are still recorded). */
  stopAfterFrames?: number;
  /** Answer requests for these digests with an error frame carrying this message. */
  errors?: Record<string, string>;
}

export interface RecordedRequest extends BlobRequestT {
  deviceId: string;
}

export class BlobServer {
  readonly requests: RecordedRequest[] = [];
  framesSent = 0;
  private readonly attempts = new Map<string, number>();

  private constructor(
    private readonly client: MqttClient,
    private readonly blobs: Map<string, Buffer>,
    private readonly options: BlobServerOptions,
  ) {}

  /** Serves `blobs` (digest → bytes; the bytes need not match the digest, to test the agent's checks). */
  static async start(url: string, blobs: Record<string, Uint8Array> | Map<string, Uint8Array>, options: BlobServerOptions = {}): Promise<BlobServer> {
    const map = new Map<string, Buffer>();
    for (const [digest, bytes] of blobs instanceof Map ? blobs : Object.entries(blobs)) map.set(digest, Buffer.from(bytes));
    const client = await mqtt.connectAsync(url, { protocolVersion: 4, clientId: `blob-server-${Math.random().toString(36).slice(2, 10)}`, reconnectPeriod: 0 });
    client.on('error', () => undefined);
    const server = new BlobServer(client, map, options);
    client.on('message', (topic, payload) => void server.onRequest(topic, payload));
    await client.subscribeAsync(fleetSubscription('blob/req'), { qos: 1 });
    return server;
  }

  set(digest: string, bytes: Uint8Array): void {
    this.blobs.set(digest, Buffer.from(bytes));
  }

  private async onRequest(topic: string, payload: Buffer): Promise<void> {
    const parsed = parseDeviceTopic(topic);
    const decoded = decodePayload('blob/req', payload);
    if (!parsed || !decoded.ok) return;
    const request = decoded.value;
    this.requests.push({ deviceId: parsed.deviceId, ...request });
    const responseTopic = deviceTopic(parsed.deviceId, 'blob/res');
    const error = this.options.errors?.[request.digest];
    const blob = this.blobs.get(request.digest);
    if (error !== undefined || !blob) {
      await this.send(responseTopic, encodeBlobFrame({ digest: request.digest, index: request.from, total: 0, error: error ?? 'unknown blob' }));
      return;
    }
    const total = Math.ceil(blob.length / BLOB_CHUNK_BYTES);
    for (let index = request.from; index < Math.min(total, request.from + request.count); index++) {
      if (this.options.stopAfterFrames !== undefined && this.framesSent >= this.options.stopAfterFrames) return;
      const key = `${request.digest}:${index}`;
      const attempt = (this.attempts.get(key) ?? 0) + 1;
      this.attempts.set(key, attempt);
      if (this.options.drop?.(index, attempt)) continue;
      this.framesSent++;
      const chunk = blob.subarray(index * BLOB_CHUNK_BYTES, (index + 1) * BLOB_CHUNK_BYTES);
      await this.send(responseTopic, encodeBlobFrame({ digest: request.digest, index, total }, chunk));
    }
  }

  private async send(topic: string, frame: Buffer): Promise<void> {
    await this.client.publishAsync(topic, frame, { qos: 1 }).catch(() => undefined);
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}
