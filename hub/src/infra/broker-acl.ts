/**
 * Access control of the embedded broker — deny by default. All broker security lives in this
 * file (and is mirrored for external brokers by an ACL file in a later capability).
 *
 * - A client connects with its device id as client id (and, when given, as username).
 * - It may publish only to its own agent→hub topics (`cairn/v1/dev/{its id}/{kind}`).
 * - It may subscribe only to its own hub→agent topics, exactly (no wildcards, no `$share/`).
 * - `$SYS/` is never publishable; a stale Will (client null) may only be a presence message.
 * - Payloads above the protocol limit are refused.
 *
 * Credentials (per-device secrets) arrive with device enrollment; until then identity is the
 * client id, and topic isolation is what this file guarantees.
 */
import type { Client, PublishPacket, Subscription, AuthenticateError } from 'aedes';
import { isAgentToHubKind, isHubToAgentKind, isValidDeviceId, parseDeviceTopic, MAX_JSON_PAYLOAD_BYTES } from '@cairn/shared';

export type DenialReason = 'bad_client_id' | 'username_mismatch' | 'sys_topic' | 'foreign_topic' | 'wrong_direction' | 'unknown_topic' | 'too_large' | 'shared_subscription' | 'wildcard';

export interface AclObserver {
  denied(action: 'connect' | 'publish' | 'subscribe', reason: DenialReason, clientId: string | null, topic?: string): void;
}

export function authenticateDevice(client: Client, username: string | undefined): { ok: true } | { ok: false; returnCode: 2 | 4 | 5; reason: DenialReason } {
  if (!isValidDeviceId(client.id)) return { ok: false, returnCode: 2, reason: 'bad_client_id' };
  if (username !== undefined && username !== client.id) return { ok: false, returnCode: 4, reason: 'username_mismatch' };
  return { ok: true };
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
export function aclHooks(observer: AclObserver) {
  return {
    authenticate(client: Client, username: Readonly<string | undefined>, _password: Readonly<Buffer | undefined>, done: (error: AuthenticateError | null, success: boolean | null) => void) {
      const verdict = authenticateDevice(client, username);
      if (verdict.ok) return done(null, true);
      observer.denied('connect', verdict.reason, client.id ?? null);
      const error = Object.assign(new Error(`connection refused: ${verdict.reason}`), { returnCode: verdict.returnCode }) as AuthenticateError;
      done(error, false);
    },
    authorizePublish(client: Client | null, packet: PublishPacket, callback: (error?: Error | null) => void) {
      const reason = checkPublish(client, packet);
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
