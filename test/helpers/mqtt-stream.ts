/**
 * MQTT clients wired to the embedded broker through an in-memory duplex pair (no socket): the
 * broker serves the stream under the same access control as a TCP connection, so what a test
 * learns cannot depend on the network.
 */
import { Duplex, PassThrough } from 'node:stream';
import { MqttClient, type IClientOptions } from 'mqtt';
import type { TestHub } from './hub.js';

/** Two connected in-memory ends; closing either closes the other, as a socket's peer would see. */
export function duplexPair(): [Duplex, Duplex] {
  const toServer = new PassThrough();
  const toClient = new PassThrough();
  const ends: [Duplex, Duplex] = [Duplex.from({ readable: toClient, writable: toServer }), Duplex.from({ readable: toServer, writable: toClient })];
  for (const [end, peer] of [ends, [ends[1], ends[0]]] as const) end.once('close', () => peer.destroy());
  return ends;
}

/** An mqtt.js client (MQTT 3.1.1, no reconnects) on a fresh in-memory stream into the hub's broker; not yet connected. */
export function inMemoryClient(hub: TestHub, options: IClientOptions): MqttClient {
  const [clientSide, serverSide] = duplexPair();
  if (hub.broker.kind !== 'embedded') throw new Error('in-memory streams reach only the embedded broker');
  hub.broker.accept(serverSide);
  return new MqttClient(() => clientSide, { protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 5000, ...options });
}
