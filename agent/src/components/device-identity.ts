/**
 * The device's identity and its MQTT credentials, both in the state directory:
 *
 *   device.key        the device's own Ed25519 seed (base64), created on first start, 0600;
 *                     it never leaves the device: enrollment only sends its signature
 *   credentials.json  {username, password, mqttUrl, hubUrl, enrolledAt} from the hub, 0600
 *
 * Enrollment (shared/src/protocol/enrollment.ts): the device signs a claim with its key and
 * posts it, with an enrollment token or without (then an operator accepts it and the device
 * collects its credentials with a later claim). The hub's answer must name the root key this
 * device pins: a different one means another hub (or someone in the middle), and nothing is
 * stored.
 */
import { postJson, type ClientTls, type JsonAnswer } from '../adapters/https-client.js';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { Type, type Static } from 'typebox';
import { Compile, describeErrors, EnrollResponse, signEnrollClaim, type EnrollResponseT } from '@cairn/shared';
import { writeFileAtomic } from '../adapters/atomic-file.js';
import { AgentError } from '../errors.js';

export const DEVICE_KEY_FILE = 'device.key';
export const CREDENTIALS_FILE = 'credentials.json';

const Credentials = Type.Object(
  {
    username: Type.String({ minLength: 1 }),
    password: Type.String({ minLength: 16 }),
    mqttUrl: Type.String(),
    hubUrl: Type.String(),
    enrolledAt: Type.Integer(),
  },
  { additionalProperties: false },
);
export type Credentials = Static<typeof Credentials>;
const credentialsValidator = Compile(Credentials);
const responseValidator = Compile(EnrollResponse);

/** The device key's seed: read, or created (0600) on first use. */
export async function loadOrCreateDeviceKey(stateDir: string): Promise<Uint8Array> {
  const file = join(stateDir, DEVICE_KEY_FILE);
  try {
    const seed = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
    if (seed.length !== 32) throw new AgentError('CAIRN_AGENT_DEVICE_KEY', `${file} does not hold a 32-byte Ed25519 seed`);
    return seed;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const seed = randomBytes(32);
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFileAtomic(file, `${seed.toString('base64')}\n`, 0o600);
  return seed;
}

/** The stored credentials, or null when the device has not enrolled (a damaged file counts as none, loudly). */
export async function loadCredentials(stateDir: string, logger: Logger): Promise<Credentials | null> {
  const file = join(stateDir, CREDENTIALS_FILE);
  let value: unknown;
  try {
    value = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    logger.error({ file, err: (err as Error).message }, 'the credentials file is unreadable; enroll again');
    return null;
  }
  if (!credentialsValidator.Check(value)) {
    logger.error({ file, problem: describeErrors(credentialsValidator, value) }, 'the credentials file is damaged; enroll again');
    return null;
  }
  return value;
}

export interface EnrollOptions {
  hubUrl: string;
  deviceId: string;
  stateDir: string;
  /** Base64 root key this device pins: the hub must name the same one. */
  rootPublicKey: string;
  token?: string;
  clock?: () => number;
  /** The CA (and client certificate) for a hub served over HTTPS with a private CA. */
  tls?: ClientTls;
}

export type EnrollOutcome = { status: 'active'; credentials: Credentials } | { status: 'pending'; retryAfterSec: number };

/** One enrollment attempt; on success the credentials are stored before they are returned. */
export async function enrollOnce(options: EnrollOptions): Promise<EnrollOutcome> {
  const seed = await loadOrCreateDeviceKey(options.stateDir);
  const now = (options.clock ?? Date.now)();
  const url = new URL('/api/v1/enroll', options.hubUrl).toString();
  let answer: JsonAnswer;
  try {
    answer = await postJson(url, signEnrollClaim(options.deviceId, seed, now, options.token), { timeoutMs: 30_000, ...(options.tls ? { tls: options.tls } : {}) });
  } catch (err) {
    throw new AgentError('CAIRN_AGENT_HUB_UNREACHABLE', `cannot reach the hub at ${url}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const body = answer.body;
  if (answer.status !== 201 && answer.status !== 202) {
    const error = body as { code?: string; message?: string } | undefined;
    throw new AgentError(error?.code ?? 'CAIRN_AGENT_ENROLL', `enrollment refused (${answer.status}): ${error?.message ?? 'no reason given'}`);
  }
  if (!responseValidator.Check(body)) throw new AgentError('CAIRN_AGENT_ENROLL', `the hub answered an unexpected body: ${describeErrors(responseValidator, body)}`);
  const enrolled = body as EnrollResponseT;
  if (enrolled.status === 'pending') return { status: 'pending', retryAfterSec: enrolled.retryAfterSec };
  if (enrolled.rootPublicKey !== options.rootPublicKey) {
    throw new AgentError('CAIRN_AGENT_ENROLL_ROOT_MISMATCH', `the hub at ${options.hubUrl} uses root key ${enrolled.rootPublicKey}, not the one this device pins; nothing was stored`);
  }
  const credentials: Credentials = { username: enrolled.mqtt.username, password: enrolled.mqtt.password, mqttUrl: enrolled.mqtt.url, hubUrl: options.hubUrl, enrolledAt: now };
  await writeFileAtomic(join(options.stateDir, CREDENTIALS_FILE), `${JSON.stringify(credentials, null, 2)}\n`, 0o600);
  return { status: 'active', credentials };
}
