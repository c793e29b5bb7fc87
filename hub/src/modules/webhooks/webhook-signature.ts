/**
 * The signature of a webhook delivery, and its check as a receiver runs it:
 * `x-cairn-signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>`, where
 * `timestamp` is the `x-cairn-timestamp` header (Unix seconds of the attempt; every retry is
 * signed anew) and `body` the raw request body bytes. A receiver refuses timestamps outside its
 * tolerance (replays) and dedupes on `x-cairn-delivery` (delivery is at-least-once).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export function signWebhook(secret: string, timestamp: string, body: string | Uint8Array): string {
  return `sha256=${createHmac('sha256', secret).update(`${timestamp}.`).update(body).digest('hex')}`;
}

/** True when `signature` is the one `secret` makes for this timestamp and body, and the timestamp is within `toleranceSeconds` of `nowMs`. */
export function verifyWebhook(secret: string, timestamp: string, body: string | Uint8Array, signature: string, nowMs: number, toleranceSeconds = 300): boolean {
  if (!/^\d{1,12}$/.test(timestamp) || Math.abs(nowMs / 1000 - Number(timestamp)) > toleranceSeconds) return false;
  const expected = Buffer.from(signWebhook(secret, timestamp, body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
