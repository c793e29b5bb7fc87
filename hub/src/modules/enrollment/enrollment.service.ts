/**
 * Device enrollment and MQTT authentication (protocol: shared/src/protocol/enrollment.ts).
 *
 * Contracts:
 * - A password is returned once, to the holder of the device key, and only its scrypt hash is
 *   stored. It is never logged.
 * - `authenticate` is what the broker asks at every CONNECT: only an active device with its
 *   current password gets in. A verified password is remembered as a SHA-256 in memory so that
 *   a fleet reconnecting after a hub restart costs one scrypt per device, not one per attempt;
 *   a newly issued password is remembered at once, revocation forgets it.
 * - Revocation refuses every later CONNECT and closes the device's live session at once. With an
 *   external broker the hub cannot close sessions (infra/external-broker.ts): the device leaves
 *   the broker's files at their next regeneration, and the hub drops its messages meanwhile.
 * - Each issued password is stored twice, as scrypt (checked here) and as a Mosquitto `$7$` hash
 *   (for an external broker's password file); neither can be turned back into the password.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { ENROLL_MAX_SKEW_MS, verifyEnrollClaim, type EnrollRequestT, type EnrollResponseT, type LabelsT } from '@cairn/shared';
import { Errors } from '../../infra/errors.js';
import { hashSecret, newSecret, verifySecret } from '../../infra/secrets.js';
import type { BrokerPort } from '../../infra/broker.js';
import type { DevicesRepository } from '../devices/devices.repository.js';
import { mosquittoPasswordHash } from '../../infra/mosquitto-password.js';
import type { DeviceCredential, EnrollmentRepository, EnrollmentToken, PasswordHashes } from './enrollment.repository.js';

export type AuthVerdict = 'ok' | 'no_credentials' | 'not_enrolled' | 'revoked' | 'bad_credentials';

/** Devices waiting for acceptance at most; past this, new pending claims are refused. */
export const MAX_PENDING = 1000;
/** How often a pending device is told to ask again. */
export const PENDING_RETRY_SEC = 30;
const TOKEN_PATTERN = /^cet_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;

export interface EnrollmentServiceOptions {
  repo: EnrollmentRepository;
  devices: DevicesRepository;
  broker: () => BrokerPort;
  clock: () => number;
  logger: Logger;
  mqttUrl: () => string;
  rootPublicKey: string;
}

export interface CreatedToken {
  id: string;
  /** The whole token, shown once. */
  token: string;
  labels: LabelsT;
  maxUses: number | null;
  expiresAt: number;
}

export class EnrollmentService {
  private readonly verified = new Map<string, Buffer>();

  constructor(private readonly options: EnrollmentServiceOptions) {}

  async enroll(request: EnrollRequestT, from: string | null): Promise<EnrollResponseT> {
    const { repo, clock, logger } = this.options;
    const { claim } = request;
    const now = clock();
    if (!verifyEnrollClaim(claim, request.signature)) throw Errors.enrollSignature();
    if (Math.abs(claim.ts - now) > ENROLL_MAX_SKEW_MS) throw Errors.enrollClockSkew(claim.ts, now);
    const existing = repo.credential(claim.deviceId);
    if (existing) {
      if (existing.status === 'revoked') throw Errors.deviceRevoked(claim.deviceId);
      if (existing.publicKey !== claim.publicKey) throw Errors.enrollKeyMismatch(claim.deviceId);
      if (claim.ts <= existing.lastClaimTs) throw Errors.enrollReplayed();
    }
    const log = logger.child({ deviceId: claim.deviceId, from });

    if (request.token !== undefined) {
      const token = await this.checkToken(request.token);
      if (!token) {
        log.warn('enrollment refused: invalid token');
        throw Errors.enrollTokenInvalid();
      }
      const password = newSecret();
      const hashes = await passwordHashes(password);
      const active = repo.transaction(() => {
        // Re-read inside the transaction: two racing claims must not both win.
        const again = repo.credential(claim.deviceId);
        if (again && (again.status === 'revoked' || again.publicKey !== claim.publicKey || claim.ts <= again.lastClaimTs)) return false;
        if (!repo.useToken(token.id, now)) return null;
        repo.activate(claim.deviceId, claim.publicKey, hashes, claim.ts, 'token', token.id, from, now);
        this.options.devices.register(claim.deviceId, token.labels, now);
        return true;
      });
      if (active === null) throw Errors.enrollTokenInvalid();
      if (!active) throw Errors.enrollReplayed();
      this.remember(claim.deviceId, password);
      log.info({ tokenId: token.id, rotated: existing?.status === 'active' }, 'device enrolled with a token');
      return this.activeResponse(claim.deviceId, password, token.labels);
    }

    if (!existing) {
      if (repo.countPending() >= MAX_PENDING) throw Errors.tooManyPending(MAX_PENDING);
      repo.insertPending(claim.deviceId, claim.publicKey, claim.ts, from, now);
      log.info('device asks to enroll; waiting for an operator (cairn device accept)');
      return { status: 'pending', deviceId: claim.deviceId, retryAfterSec: PENDING_RETRY_SEC };
    }
    switch (existing.status) {
      case 'pending':
        repo.recordClaim(claim.deviceId, claim.ts, from);
        return { status: 'pending', deviceId: claim.deviceId, retryAfterSec: PENDING_RETRY_SEC };
      case 'accepted': {
        const password = newSecret();
        repo.activate(claim.deviceId, claim.publicKey, await passwordHashes(password), claim.ts, 'accepted', null, from, now);
        this.options.devices.register(claim.deviceId, {}, now);
        this.remember(claim.deviceId, password);
        log.info('accepted device collected its credentials');
        return this.activeResponse(claim.deviceId, password, {});
      }
      default:
        throw Errors.alreadyEnrolled(claim.deviceId);
    }
  }

  list(status?: DeviceCredential['status']): DeviceCredential[] {
    return this.options.repo.credentials(status);
  }

  tokens(): EnrollmentToken[] {
    return this.options.repo.tokens();
  }

  /** pending → accepted: the device collects its credentials with its next signed claim. */
  accept(deviceId: string): DeviceCredential {
    const credential = this.options.repo.credential(deviceId);
    if (!credential) throw Errors.enrollmentNotFound(deviceId);
    if (!this.options.repo.accept(deviceId)) throw Errors.enrollmentState(deviceId, credential.status, 'pending');
    this.options.logger.info({ deviceId }, 'device accepted');
    return this.options.repo.credential(deviceId)!;
  }

  /** Refuses the device from now on and closes its live session. */
  revoke(deviceId: string): DeviceCredential {
    const credential = this.options.repo.credential(deviceId);
    if (!credential) throw Errors.enrollmentNotFound(deviceId);
    if (!this.options.repo.revoke(deviceId, this.options.clock())) throw Errors.enrollmentState(deviceId, credential.status, 'a device that is not revoked');
    this.verified.delete(deviceId);
    this.options.broker().disconnect(deviceId);
    this.options.logger.warn({ deviceId }, 'device revoked; its session is closed and reconnects are refused');
    return this.options.repo.credential(deviceId)!;
  }

  /** Drops a pending or revoked id so that it can enroll again (with a new key). */
  forget(deviceId: string): void {
    const credential = this.options.repo.credential(deviceId);
    if (!credential) throw Errors.enrollmentNotFound(deviceId);
    if (!this.options.repo.forget(deviceId)) throw Errors.enrollmentState(deviceId, credential.status, 'pending or revoked');
  }

  async createToken(options: { labels: LabelsT; maxUses: number | null; ttlMs: number; createdBy: string }): Promise<CreatedToken> {
    const id = randomBytes(8).toString('hex');
    const secret = newSecret();
    const now = this.options.clock();
    const expiresAt = now + options.ttlMs;
    this.options.repo.insertToken({ id, secretHash: await hashSecret(secret), labels: options.labels, maxUses: options.maxUses, expiresAt, createdAt: now, createdBy: options.createdBy });
    return { id, token: `cet_${id}_${secret}`, labels: options.labels, maxUses: options.maxUses, expiresAt };
  }

  revokeToken(id: string): void {
    if (!this.options.repo.revokeToken(id, this.options.clock())) throw Errors.enrollmentTokenNotFound(id);
  }

  /** Whether the device may talk to the hub now (active, not revoked); an external broker's port asks it for every message. */
  isActive(deviceId: string): boolean {
    return this.options.repo.credential(deviceId)?.status === 'active';
  }

  /** The MQTT CONNECT check: username is the client id (checked by the ACL), password the device's. */
  async authenticate(deviceId: string, password: Buffer | undefined): Promise<AuthVerdict> {
    if (!password || password.length === 0) return 'no_credentials';
    const credential = this.options.repo.credential(deviceId);
    if (!credential || credential.status === 'pending' || credential.status === 'accepted') return 'not_enrolled';
    if (credential.status === 'revoked' || !credential.secretHash) return 'revoked';
    const digest = createHash('sha256').update(password).digest();
    const known = this.verified.get(deviceId);
    if (known && timingSafeEqual(known, digest)) return 'ok';
    const hash = credential.secretHash;
    if (!(await verifySecret(password.toString('utf8'), hash))) return 'bad_credentials';
    // Only remember it if the device was not revoked or rotated while scrypt ran.
    if (this.options.repo.credential(deviceId)?.secretHash === hash) this.verified.set(deviceId, digest);
    return 'ok';
  }

  /** The hub knows the password it just issued: the first CONNECT needs no scrypt. */
  private remember(deviceId: string, password: string): void {
    this.verified.set(deviceId, createHash('sha256').update(password).digest());
  }

  private async checkToken(text: string): Promise<EnrollmentToken | null> {
    const match = TOKEN_PATTERN.exec(text);
    if (!match) return null;
    const token = this.options.repo.token(match[1]!);
    if (!token || token.revokedAt !== null || token.expiresAt <= this.options.clock() || (token.maxUses !== null && token.uses >= token.maxUses)) return null;
    return (await verifySecret(match[2]!, token.secretHash)) ? token : null;
  }

  private activeResponse(deviceId: string, password: string, labels: LabelsT): EnrollResponseT {
    return { status: 'active', deviceId, mqtt: { url: this.options.mqttUrl(), username: deviceId, password }, rootPublicKey: this.options.rootPublicKey, labels };
  }
}

async function passwordHashes(password: string): Promise<PasswordHashes> {
  return { secretHash: await hashSecret(password), brokerHash: mosquittoPasswordHash(password) };
}
