/**
 * Access control of the embedded broker — deny by default. All broker security lives in this
 * file; mosquitto-config.ts mirrors it in the files an external Mosquitto enforces.
 *
 * - A client connects with its device id as client id AND username, and the password the hub
 *   issued at enrollment (modules/enrollment): anonymous clients, unknown, pending and revoked
 *   devices and wrong passwords are refused at CONNECT.
 * - Over mutual TLS (`tls.requireClientCert`) the client certificate must name the device: its
 *   subject CN or a DNS subjectAltName equals the client id, so one device's certificate cannot
 *   carry another device's (stolen) password.
 * - It may publish only to its own agent→hub topics (`cairn/v1/dev/{its id}/{kind}`), at most
 *   `rate.perSec` messages per second (burst `rate.burst`); a flood is refused like any other
 *   denied publish (the connection closes; the device's QoS 1 messages are resent later).
 * - It may subscribe only to its own hub→agent topics, exactly (no wildcards, no `$share/`).
 * - `$SYS/` is never publishable; a stale Will (client null) may only be a presence message.
 * - Payloads above the protocol limit are refused.
 */
import { TLSSocket } from 'node:tls';
import type { Client, PublishPacket, Subscription, AuthenticateError } from 'aedes';
import { isAgentToHubKind, isHubToAgentKind, isValidDeviceId, parseDeviceTopic, MAX_JSON_PAYLOAD_BYTES } from '@cairn/shared';
import { RateLimiter } from './rate-limit.js';

export type DenialReason =
  | 'tls_handshake'
  | 'cert_mismatch'
  | 'bad_client_id'
  | 'anonymous'
  | 'username_mismatch'
  | 'not_enrolled'
  | 'revoked'
  | 'bad_credentials'
  | 'sys_topic'
  | 'foreign_topic'
  | 'wrong_direction'
  | 'unknown_topic'
  | 'too_large'
  | 'rate_limited'
  | 'shared_subscription'
  | 'wildcard';

/** Checks a device's password (modules/enrollment). */
export type DeviceAuthenticator = (deviceId: string, password: Buffer | undefined) => Promise<'ok' | 'no_credentials' | 'not_enrolled' | 'revoked' | 'bad_credentials'>;

export interface PublishRate {
  perSec: number;
  burst: number;
}

export interface AclObserver {
  denied(action: 'connect' | 'publish' | 'subscribe', reason: DenialReason, clientId: string | null, topic?: string): void;
}

type ConnectVerdict = { ok: true } | { ok: false; returnCode: 2 | 4 | 5; reason: DenialReason };

/** MQTT 3.1.1 CONNACK codes: 2 identifier rejected, 4 bad user name or password, 5 not authorised. */
export async function authenticateDevice(client: Client, username: string | undefined, password: Buffer | undefined, authenticator: DeviceAuthenticator): Promise<ConnectVerdict> {
  if (!isValidDeviceId(client.id)) return { ok: false, returnCode: 2, reason: 'bad_client_id' };
  if (username === undefined) return { ok: false, returnCode: 4, reason: 'anonymous' };
  if (username !== client.id) return { ok: false, returnCode: 4, reason: 'username_mismatch' };
  const names = certificateNames(client);
  if (names !== null && !names.includes(client.id)) return { ok: false, returnCode: 5, reason: 'cert_mismatch' };
  switch (await authenticator(client.id, password)) {
    case 'ok':
      return { ok: true };
    case 'no_credentials':
      return { ok: false, returnCode: 4, reason: 'anonymous' };
    case 'bad_credentials':
      return { ok: false, returnCode: 4, reason: 'bad_credentials' };
    case 'not_enrolled':
      return { ok: false, returnCode: 5, reason: 'not_enrolled' };
    case 'revoked':
      return { ok: false, returnCode: 5, reason: 'revoked' };
  }
}

/**
 * The names a verified client certificate gives its holder (subject CN, DNS subjectAltNames);
 * null when the connection carries none (plain TCP, or TLS without client certificates).
 */
function certificateNames(client: Client): string[] | null {
  const socket: unknown = client.conn;
  if (!(socket instanceof TLSSocket) || !socket.authorized) return null;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return null;
  const cn = cert.subject?.CN;
  const names = (Array.isArray(cn) ? cn : cn ? [cn] : []) as string[];
  for (const entry of (cert.subjectaltname ?? '').split(',')) {
    const [kind, value] = entry.trim().split(':');
    if (kind === 'DNS' && value) names.push(value);
  }
  return names;
}

/** null: allowed; otherwise the reason for refusing. */
export function checkPublish(client: Client | null, packet: Pick<PublishPacket, 'topic' | 'payload'>): DenialReason | null {
  const topic = packet.topic;
  if (topic.startsWith('$SYS')) return 'sys_topic';
  const size = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
  if (size > MAX_JSON_PAYLOAD_BYTES) return 'too_large';
  const parsed = parseDeviceTopic(topic);
  if (!parsed) return 'unknown_topic';
  if (client === null) return parsed.kind === 'presence' ? null : 'wrong_direction';
  if (parsed.deviceId !== client.id) return 'foreign_topic';
  if (!isAgentToHubKind(parsed.kind)) return 'wrong_direction';
  return null;
}

export function checkSubscribe(client: Client, topic: string): DenialReason | null {
  if (topic.startsWith('$share/') || topic.startsWith('$queue/')) return 'shared_subscription';
  if (topic.includes('+') || topic.includes('#')) return 'wildcard';
  const parsed = parseDeviceTopic(topic);
  if (!parsed) return 'unknown_topic';
  if (parsed.deviceId !== client.id) return 'foreign_topic';
  if (!isHubToAgentKind(parsed.kind)) return 'wrong_direction';
  return null;
}

/** The aedes hook set implementing the rules above. */
export function aclHooks(observer: AclObserver, authenticator: DeviceAuthenticator, rate: PublishRate) {
  const limiter = new RateLimiter({ ratePerSec: rate.perSec, burst: rate.burst });
  return {
    authenticate(client: Client, username: Readonly<string | undefined>, password: Readonly<Buffer | undefined>, done: (error: AuthenticateError | null, success: boolean | null) => void) {
      authenticateDevice(client, username, password, authenticator).then(
        (verdict) => {
          if (verdict.ok) return done(null, true);
          observer.denied('connect', verdict.reason, client.id ?? null);
          const error = Object.assign(new Error(`connection refused: ${verdict.reason}`), { returnCode: verdict.returnCode }) as AuthenticateError;
          done(error, false);
        },
        (err: Error) => {
          // The credential store failed: refuse as "server unavailable" (3), which devices retry.
          observer.denied('connect', 'not_enrolled', client.id ?? null);
          done(Object.assign(new Error(`authentication failed: ${err.message}`), { returnCode: 3 }) as AuthenticateError, false);
        },
      );
    },
    authorizePublish(client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void) {
      const reason = checkPublish(client, packet) ?? (client && !limiter.take(client.id) ? 'rate_limited' : null);
      if (reason === null) return callback(null);
      observer.denied('publish', reason, client?.id ?? null, packet.topic);
      callback(new Error(`publish to ${packet.topic} refused: ${reason}`));
    },
    authorizeSubscribe(client: Client, subscription: Subscription, callback: (error: Error | null, subscription?: Subscription | null) => void) {
      const reason = checkSubscribe(client, subscription.topic);
      if (reason === null) return callback(null, subscription);
      observer.denied('subscribe', reason, client.id, subscription.topic);
      callback(null, null); // SUBACK failure for this filter; the connection stays up
    },
  };
}
