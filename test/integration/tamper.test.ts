/**
 * The tamper suite (issue 4): one named test per attack on the update path, each run against a
 * real hub — once with its embedded broker on a TCP socket, once joined to a real Mosquitto
 * configured by `cairn broker config --mosquitto` (helpers/mosquitto.ts) — and a real agent (mqtt.js, worker-thread
 * onnxruntime) that serves demo@1.0.0. The attacker holds copies of the hub's keys (read from
 * its data directory, as one who stole a backup would) and publishes retained documents on the
 * device's `desired` topic through the hub's broker port (signing-free; through Mosquitto it is the
 * hub's own broker account, the one identity allowed to write there), or tampers with
 * the blobs the hub serves. Each attack must be refused with its own reason code in an agent
 * event, counted in the hub's `cairn_hub_device_rejections_total{reason}`, and leave the agent
 * answering inference with demo@1.0.0.
 *
 * The unit tests of trust.ts cover the same checks on the verifier alone; this suite proves the
 * running agent applies them, reports them, and keeps serving.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { deviceTopic, sha256Hex, type DeviceEventT, type SignedDesiredT } from '@cairn/shared';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { connectDevice, startTestHub, type TestBroker, type TestHub } from '../helpers/hub.js';
import { infer, startPinnedAgent } from '../helpers/agent.js';
import { HOUR_MS, buildKeyring, hubTrust, makeManifest, randomKey, signDesired, signManifest, type TrustFixture } from '../helpers/trust-fixtures.js';
import { waitFor } from '../helpers/wait.js';

const DEVICE = 'press-1';
const SERVED = '1.0.0';

/** Versions pushed in this order, so their releaseCounters are 1, 2, 3, 4. */
const MODELS = { '0.9.0': buildDemoModel({ seed: 10 }), '1.0.0': buildDemoModel({ seed: 11 }), '1.1.0': buildDemoModel({ seed: 12 }), '1.2.0': buildDemoModel({ seed: 13 }) } as const;
/** Never pushed: the bytes an attacker swaps in. */
const IMPOSTOR = buildDemoModel({ seed: 14 });

for (const broker of ['embedded', 'mosquitto'] as const satisfies readonly TestBroker[]) {
  describe(`over the ${broker} broker`, () => {
    test('tamper suite: each attack is refused with its reason, counted by the hub, and the agent keeps serving', async (t) => {
      const hub = await startTestHub(t, { broker });
      for (const [version, model] of Object.entries(MODELS)) assert.equal((await hub.api('POST', `/api/v1/models?name=demo&version=${version}`, model.bytes)).status, 201);
      await hub.approve(`demo@${SERVED}`);
      const agent = await startPinnedAgent(t, hub, DEVICE);
      await connectDevice(t, hub, 'press-2');
      await waitFor('both devices known', () => hub.ctx.devices.get(DEVICE)?.online && hub.ctx.devices.get('press-2'));
      const deployed = await deploy(hub, SERVED, [DEVICE, 'press-2']);
      await waitFor(`${DEVICE} commits ${SERVED}`, () => agent.status.deployment?.deploymentId === deployed && agent.status.deployment.phase === 'committed');
      const servedDigest = sha256Hex(MODELS[SERVED].bytes);
      const captured = hub.ctx.deployments.desiredFor(DEVICE)!.document;

      const attacker = () => hubTrust(hub.dataDir, hub.ctx.keys.signedKeyring);
      const nextSeq = () => agent.status.lastDesiredSeq + 1;
      const publishDesired = (document: SignedDesiredT | string) =>
        hub.ctx.broker.publish(deviceTopic(DEVICE, 'desired'), Buffer.from(typeof document === 'string' ? document : JSON.stringify(document)), { qos: 1, retain: true });
      const bundleOf = (version: string) => hub.ctx.registry.get('demo', version)!.bundle;

      /** Runs `attack` and checks the outcome every attack must have. */
      const refused = async (s: TestContext, reason: string, type: 'desired_rejected' | 'deployment', attack: () => Promise<unknown>) => {
        const seen = new Set((await events(hub)).map((e) => e.eventId));
        const countBefore = await rejections(hub, reason);
        await attack();
        const event = await waitFor(`a ${type} event with reason ${reason}`, async () => (await events(hub)).find((e) => !seen.has(e.eventId) && e.type === type && e.reason === reason));
        if (type === 'deployment') assert.equal(event.phase, 'failed');
        await waitFor(`cairn_hub_device_rejections_total{reason="${reason}"} counts it`, async () => (await rejections(hub, reason)) >= countBefore + 1);
        const answer = await infer(agent);
        assert.equal(answer.status, 200, s.name);
        assert.deepEqual(answer.model, { name: 'demo', version: SERVED, digest: servedDigest }, 'the agent still serves the model it had');
      };

      await t.test('unsigned bundle: a manifest without signatures (schema)', (s) =>
        refused(s, 'schema', 'desired_rejected', () => publishDesired(signDesired(attacker(), { deviceId: DEVICE, seq: nextSeq(), bundle: { manifest: makeManifest(IMPOSTOR.bytes, { releaseCounter: 99 }), signatures: [] } }))),
      );

      await t.test('foreign-key bundle: a manifest signed by a release key the keyring does not list (bundle_signature)', (s) =>
        refused(s, 'bundle_signature', 'desired_rejected', () => {
          const bundle = signManifest(makeManifest(IMPOSTOR.bytes, { releaseCounter: 99 }), randomKey('release'));
          return publishDesired(signDesired(attacker(), { deviceId: DEVICE, seq: nextSeq(), bundle }));
        }),
      );

      await t.test('key used outside its role: a manifest signed by the director key (key_role)', (s) =>
        refused(s, 'key_role', 'desired_rejected', () => {
          const trust = attacker();
          const bundle = signManifest(makeManifest(IMPOSTOR.bytes, { releaseCounter: 99 }), trust.director);
          return publishDesired(signDesired(trust, { deviceId: DEVICE, seq: nextSeq(), bundle }));
        }),
      );

      await t.test('replayed desired document: the hub-signed document of an earlier seq (replayed_seq)', async (s) => {
        const again = await deploy(hub, SERVED, [DEVICE]);
        await waitFor('the newer document is accepted', () => agent.status.deployment?.deploymentId === again && agent.status.deployment.phase === 'committed');
        await refused(s, 'replayed_seq', 'desired_rejected', () => publishDesired(captured));
      });

      await t.test('expired desired document: a freeze (expired)', (s) =>
        refused(s, 'expired', 'desired_rejected', () =>
          publishDesired(signDesired(attacker(), { deviceId: DEVICE, seq: nextSeq(), bundle: bundleOf('1.1.0'), issuedAt: Date.now() - 2 * HOUR_MS, expiresAt: Date.now() - HOUR_MS })),
        ),
      );

      await t.test('expired keyring: a freeze of the key list (keyring_expired)', (s) =>
        refused(s, 'keyring_expired', 'desired_rejected', () => {
          const trust = attacker();
          const keyring = buildKeyring(trust.root, [trust.director, trust.release], { version: hub.ctx.keys.signedKeyring.keyring.version, issuedAt: Date.now() - 2 * HOUR_MS, expiresAt: Date.now() - HOUR_MS });
          return publishDesired(signDesired(trust, { deviceId: DEVICE, seq: nextSeq(), bundle: bundleOf('1.1.0'), keyring }));
        }),
      );

      await t.test("document for another device: press-2's hub-signed document sent to press-1 (wrong_device)", (s) =>
        refused(s, 'wrong_device', 'desired_rejected', () => publishDesired(hub.ctx.deployments.desiredFor('press-2')!.document)),
      );

      await t.test('mix-and-match: the manifest of 1.1.0 with the blob of another model of the same size (digest_mismatch)', (s) =>
        refused(s, 'digest_mismatch', 'deployment', async () => {
          assert.equal(IMPOSTOR.bytes.length, MODELS['1.1.0'].bytes.length, 'same size: only the digest can tell them apart');
          writeFileSync(hub.ctx.blobs.pathOf(sha256Hex(MODELS['1.1.0'].bytes)), IMPOSTOR.bytes);
          await deploy(hub, '1.1.0', [DEVICE]);
        }),
      );

      await t.test('endless data: the blob of 1.2.0 served with 1 MiB more than the manifest says (size_mismatch)', (s) =>
        refused(s, 'size_mismatch', 'deployment', async () => {
          const path = hub.ctx.blobs.pathOf(sha256Hex(MODELS['1.2.0'].bytes));
          writeFileSync(path, Buffer.concat([readFileSync(path), Buffer.alloc(1024 * 1024, 7)]));
          await deploy(hub, '1.2.0', [DEVICE]);
        }),
      );

      await t.test('downgrade: a freshly signed document naming a genuine bundle below the security floor (below_floor)', async (s) => {
        const floor = await hub.api('POST', '/api/v1/keys/changes', { floor: 2 });
        assert.equal(floor.body.installed, true, JSON.stringify(floor.body));
        await waitFor('the agent accepted the keyring with the floor', () => agent.status.keyringVersion === floor.body.keyringVersion);
        assert.equal((await hub.api('POST', '/api/v1/deployments', { model: 'demo@0.9.0', deviceIds: [DEVICE] })).body.code, 'CAIRN_BELOW_FLOOR', 'the hub will not sign it');
        await refused(s, 'below_floor', 'desired_rejected', () => publishDesired(signDesired(attacker(), { deviceId: DEVICE, seq: nextSeq(), bundle: bundleOf('0.9.0') })));
        // The device keeps the highest floor it saw: even a newer root-signed keyring without one does not lower it.
        await refused(s, 'below_floor', 'desired_rejected', () => {
          const trust = attacker();
          const keyring = buildKeyring(trust.root, [trust.director, trust.release], { version: hub.ctx.keys.signedKeyring.keyring.version + 1 });
          assert.equal(keyring.keyring.securityFloor, undefined);
          return publishDesired(signDesired(trust, { deviceId: DEVICE, seq: nextSeq(), bundle: bundleOf('0.9.0'), keyring }));
        });
      });

      await t.test('revoked key: documents and bundles signed by stolen keys after their revocation (key_revoked)', async (s) => {
        const stolen: TrustFixture = attacker();
        for (const keyId of [stolen.release.keyId, stolen.director.keyId]) assert.equal((await hub.api('POST', '/api/v1/keys/changes', { revoke: keyId })).body.installed, true);
        await waitFor('the agent accepted the keyring with both revocations', () => agent.status.keyringVersion === hub.ctx.keys.signedKeyring.keyring.version);
        const current = attacker();
        assert.notEqual(current.director.keyId, stolen.director.keyId, 'the hub signs with replacement keys');
        const keyring = hub.ctx.keys.signedKeyring;
        await refused(s, 'key_revoked', 'desired_rejected', () => publishDesired(signDesired({ ...stolen, keyring }, { deviceId: DEVICE, seq: nextSeq(), bundle: bundleOf('1.1.0') })));
        const forgedBundle = signManifest(makeManifest(IMPOSTOR.bytes, { releaseCounter: 99 }), stolen.release);
        await refused(s, 'key_revoked', 'desired_rejected', () => publishDesired(signDesired(current, { deviceId: DEVICE, seq: nextSeq(), bundle: forgedBundle })));
        // The bundle the device runs was signed by the revoked release key: the hub re-signed it, and it still deploys.
        assert.ok(!bundleOf(SERVED).signatures.some((sig) => sig.keyId === stolen.release.keyId));
        const redeployed = await deploy(hub, SERVED, [DEVICE]);
        await waitFor(`${SERVED}, re-signed, is accepted again`, () => agent.status.deployment?.deploymentId === redeployed && agent.status.deployment.phase === 'committed');
      });
    });
  });
}

async function deploy(hub: TestHub, version: string, deviceIds: string[]): Promise<string> {
  const answer = await hub.api('POST', '/api/v1/deployments', { model: `demo@${version}`, deviceIds });
  assert.equal(answer.status, 201, JSON.stringify(answer.body));
  return answer.body.id;
}

async function events(hub: TestHub): Promise<DeviceEventT[]> {
  return (await hub.api('GET', `/api/v1/devices/${DEVICE}/events?limit=1000`)).body.events;
}

/** The hub's count of device rejections with `reason`, read from its Prometheus endpoint. */
async function rejections(hub: TestHub, reason: string): Promise<number> {
  const text = (await hub.api('GET', '/metrics')).body as string;
  const line = text.split('\n').find((l) => l.startsWith(`cairn_hub_device_rejections_total{reason="${reason}"}`));
  return line ? Number(line.split(' ').pop()) : 0;
}
