/**
 * Keys module — the trust hierarchy (DESIGN §3): shows the keys and changes the keyring.
 *
 * A change (rotate a role's key, revoke a key, raise the security floor) is prepared as the next
 * keyring version, a draft. With the root key online the hub signs and installs it at once;
 * with the root offline the caller signs the draft where the root key is (`cairn keys … --root-key
 * PATH` does it on the operator's machine) and `PUT`s the signed keyring, so the root seed never
 * reaches the hub. Installing re-signs, in one transaction with its audit entry, every registry
 * bundle no listed release key signs (a revoked release key's bundles are re-signed by the
 * current one: the registry's bundles are the hub's own audited records, whatever else the
 * revoked key signed is refused by devices), then every live desired document (deployments
 * module, `keyring.installed`), which is how devices receive the keyring.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { KeyId, KeyRole, Keyring, SignedKeyring, type KeyringT, type SignedKeyringT } from '@cairn/shared';
import type { HubContext, ModuleOptions } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { errorResponses } from '../../infra/api-schemas.js';
import { KeyringInstallError } from '../../infra/keys.js';
import { KeyringChangeError, type KeyringChange } from '../../infra/keyring-change.js';
import type { AuditActor } from '../audit/audit-log.js';
import { devicesBelowFloor } from '../deployments/desired-signer.js';

const KeysView = Type.Object({
  rootKeyId: Type.String(),
  rootPublicKey: Type.String(),
  rootOnline: Type.Boolean(),
  keyringVersion: Type.Integer(),
  keyringExpiresAt: Type.String(),
  securityFloor: Type.Integer(),
  keys: Type.Array(
    Type.Object({
      keyId: Type.String(),
      role: Type.String(),
      publicKey: Type.String(),
      expiresAt: Type.Integer(),
      status: Type.String(),
    }),
  ),
  revoked: Type.Array(Type.String()),
  draft: Type.Union([Keyring, Type.Null()]),
});

const ChangeBody = Type.Union([
  Type.Object({ rotate: KeyRole }, { additionalProperties: false }),
  Type.Object({ revoke: KeyId }, { additionalProperties: false }),
  Type.Object({ floor: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }) }, { additionalProperties: false }),
]);

const ChangeAnswer = Type.Object({
  draft: Keyring,
  /** True when the hub held the root key and installed the keyring; false: a root holder must sign `draft`. */
  installed: Type.Boolean(),
  keyringVersion: Type.Integer({ description: 'the version in force after this call' }),
});

const conflict = { 409: errorResponses[400] };
/** How long before an expiry the hub starts warning at every start. */
const EXPIRY_WARNING_MS = 30 * 24 * 3600 * 1000;

function keysView(ctx: HubContext) {
  const { keyring } = ctx.keys.signedKeyring;
  return {
    rootKeyId: ctx.keys.rootKeyId,
    rootPublicKey: Buffer.from(ctx.keys.rootPublicKey).toString('base64'),
    rootOnline: ctx.keys.rootOnline,
    keyringVersion: keyring.version,
    keyringExpiresAt: new Date(keyring.expiresAt).toISOString(),
    securityFloor: ctx.keys.securityFloor,
    keys: ctx.keys.describe(),
    revoked: keyring.revoked ?? [],
    draft: ctx.keys.draft,
  };
}

/** A floor that would leave devices assigned a bundle they must refuse is refused. */
function assertFloorStrandsNobody(ctx: HubContext, keyring: KeyringT): void {
  const floor = keyring.securityFloor ?? 0;
  if (floor <= ctx.keys.securityFloor) return;
  const stranded = devicesBelowFloor(ctx, floor);
  if (stranded.length > 0) throw Errors.floorStrandsDevices(floor, stranded);
}

/** Installs a root-signed keyring (the draft), re-signs what it obsoletes, and audits it. */
function installKeyring(ctx: HubContext, actor: AuditActor, signed: SignedKeyringT): void {
  assertFloorStrandsNobody(ctx, signed.keyring);
  const before = ctx.keys.signedKeyring.keyring;
  try {
    ctx.keys.install(signed, ctx.clock());
  } catch (err) {
    if (!(err instanceof KeyringInstallError)) throw err;
    if (err.kind === 'no_draft') throw Errors.noKeyringDraft(err.message);
    if (err.kind === 'not_the_draft') throw Errors.keyringNotDraft(err.message);
    throw Errors.keyringSignature(err.message);
  }
  const keyring = signed.keyring;
  const release = new Set(keyring.keys.filter((k) => k.role === 'release').map((k) => k.keyId));
  ctx.db.transaction(() => {
    const resigned: string[] = [];
    for (const model of ctx.registry.list()) {
      if (model.bundle.signatures.some((s) => release.has(s.keyId))) continue;
      ctx.registry.replaceSignatures(model.name, model.version, [ctx.keys.signManifest(model.bundle.manifest)]);
      resigned.push(`${model.name}@${model.version}`);
    }
    ctx.audit.append(actor, {
      action: 'keys.install',
      target: `keyring:${keyring.version}`,
      before: summary(before),
      after: { ...summary(keyring), bundlesResigned: resigned.slice(0, 100), bundlesResignedCount: resigned.length },
    });
  })();
  ctx.logger.info({ version: keyring.version, signing: { release: ctx.keys.signingKeyId('release'), director: ctx.keys.signingKeyId('director') }, securityFloor: ctx.keys.securityFloor }, 'keyring installed');
  ctx.bus.emit('keyring.installed', { version: keyring.version });
}

/** What the audit log records of a keyring: ids, roles and dates, never key material. */
function summary(keyring: KeyringT) {
  return { version: keyring.version, keys: keyring.keys.map((k) => `${k.role}:${k.keyId}`), revoked: keyring.revoked ?? [], securityFloor: keyring.securityFloor ?? 0, expiresAt: keyring.expiresAt };
}

const keysPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();

  fastify.addHook('onReady', async () => {
    for (const warning of ctx.keys.expiringSoon(ctx.clock(), EXPIRY_WARNING_MS)) ctx.logger.warn(`${warning}: devices refuse expired keyrings and keys; run a keyring change (cairn keys rotate …) before then`);
  });

  app.get('/api/v1/keys', { schema: { summary: 'The root key to pin, the keyring in force and any draft (public halves only)', response: { 200: KeysView, ...errorResponses } } }, async () => keysView(ctx));

  app.post(
    '/api/v1/keys/changes',
    {
      schema: {
        summary: 'Prepare the next keyring: rotate a role, revoke a key, or raise the security floor; installed at once when the root key is on the hub',
        body: ChangeBody,
        response: { 200: ChangeAnswer, ...errorResponses, ...conflict },
      },
    },
    async (request) => {
      const body = request.body;
      const change: KeyringChange = 'rotate' in body ? { kind: 'rotate', role: body.rotate } : 'revoke' in body ? { kind: 'revoke', keyId: body.revoke } : { kind: 'floor', releaseCounter: body.floor };
      let draft: KeyringT;
      try {
        draft = ctx.keys.prepare(change, ctx.clock());
      } catch (err) {
        if (!(err instanceof KeyringChangeError)) throw err;
        throw err.kind === 'unknown_key' ? Errors.keyNotFound(err.message) : Errors.floorLowered(err.message);
      }
      assertFloorStrandsNobody(ctx, draft);
      ctx.audit.append(request.actor, { action: 'keys.prepare', target: `keyring:${draft.version}`, after: { change, keyring: summary(draft) } });
      const signed = ctx.keys.signWithRoot(draft);
      if (signed) installKeyring(ctx, request.actor, signed);
      return { draft, installed: signed !== null, keyringVersion: ctx.keys.signedKeyring.keyring.version };
    },
  );

  app.put(
    '/api/v1/keys/keyring',
    {
      schema: {
        summary: 'Install the keyring draft, signed by the root key',
        body: SignedKeyring,
        response: { 200: KeysView, ...errorResponses, ...conflict },
      },
    },
    async (request) => {
      installKeyring(ctx, request.actor, request.body);
      return keysView(ctx);
    },
  );
};

export default keysPlugin;
