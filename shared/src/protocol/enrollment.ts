/**
 * Device enrollment over HTTP (`POST /api/v1/enroll`): how a device with its own Ed25519 key
 * obtains its MQTT credentials.
 *
 * The device signs a claim `{purpose, deviceId, publicKey, ts}` with its device key; the hub
 * verifies the signature (possession of the key), a `ts` within ENROLL_MAX_SKEW_MS of its clock
 * and strictly above the last claim it accepted from that device (a captured request cannot be
 * replayed to obtain fresh credentials), then:
 *
 * - with a valid enrollment token: the device is active at once and gets its credentials;
 * - without one: the device is `pending` until an operator accepts it; the device repeats a
 *   new signed claim (new `ts`) and receives its credentials once accepted.
 *
 * The credentials are the MQTT username (the device id) and a random password, of which the hub
 * keeps only a scrypt hash. Enrolling again with a token and the same key rotates the password.
 */
import { Type, type Static } from 'typebox';
import { canonicalBytes } from '../crypto/canonical-json.js';
import { ed25519 } from '../crypto/ed25519.js';
import { DeviceId, EpochMs, Labels, PublicKeyB64, SignatureB64 } from './schemas.js';

export const ENROLL_PURPOSE = 'cairn.enroll/v1';
/** How far a claim's `ts` may be from the hub's clock. */
export const ENROLL_MAX_SKEW_MS = 10 * 60 * 1000;

export const EnrollClaim = Type.Object(
  { purpose: Type.Literal(ENROLL_PURPOSE), deviceId: DeviceId, publicKey: PublicKeyB64, ts: EpochMs },
  { additionalProperties: false },
);
export type EnrollClaimT = Static<typeof EnrollClaim>;

export const EnrollRequest = Type.Object(
  {
    claim: EnrollClaim,
    /** Ed25519 signature of canonical JSON of `claim` by the device key. */
    signature: SignatureB64,
    /** An enrollment token from `cairn device enroll-token`; without one the device waits for acceptance. */
    token: Type.Optional(Type.String({ minLength: 8, maxLength: 128 })),
  },
  { additionalProperties: false },
);
export type EnrollRequestT = Static<typeof EnrollRequest>;

export const MqttCredentials = Type.Object(
  { url: Type.String({ pattern: '^mqtts?://' }), username: DeviceId, password: Type.String({ minLength: 16, maxLength: 256 }) },
  { additionalProperties: false },
);
export type MqttCredentialsT = Static<typeof MqttCredentials>;

export const EnrollResponse = Type.Union([
  Type.Object(
    { status: Type.Literal('active'), deviceId: DeviceId, mqtt: MqttCredentials, rootPublicKey: PublicKeyB64, labels: Labels },
    { additionalProperties: false },
  ),
  Type.Object({ status: Type.Literal('pending'), deviceId: DeviceId, retryAfterSec: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
]);
export type EnrollResponseT = Static<typeof EnrollResponse>;

/** The device's signed enrollment request for `deviceId` at `ts`. */
export function signEnrollClaim(deviceId: string, seed: Uint8Array, ts: number, token?: string): EnrollRequestT {
  const claim: EnrollClaimT = { purpose: ENROLL_PURPOSE, deviceId, publicKey: Buffer.from(ed25519.publicKeyFromSeed(seed)).toString('base64'), ts };
  const signature = Buffer.from(ed25519.sign(canonicalBytes(claim), seed)).toString('base64');
  return { claim, signature, ...(token !== undefined ? { token } : {}) };
}

/** Whether `signature` is the claim's own key's signature of it. */
export function verifyEnrollClaim(claim: EnrollClaimT, signature: string): boolean {
  return ed25519.verify(canonicalBytes(claim), Buffer.from(signature, 'base64'), Buffer.from(claim.publicKey, 'base64'));
}
