/**
 * Signing and publishing desired documents for 10,000 devices (`npm run bench -- desired`),
 * through the real deployments path: `POST /api/v1/deployments` naming 10,000 device ids makes
 * the hub sign one document per device (`desired-signer.ts`: director signature, and the
 * agent's own verifier run on the hub's output), store each in SQLite in one transaction, and
 * publish each retained, one at a time, through the `DesiredPublisher` queue into the embedded
 * broker. Target: at least 10,000 documents per second, end to end.
 *
 * The same run times the parts on the same 10,000 devices, so their shares are ratios from one
 * run: signing alone (the director signature only), signing with the hub's self-check (what the
 * deployment does per device), and publishing alone (already-signed documents into the broker).
 */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { canonicalBytes, deviceTopic, ed25519, freezeCanonical, type DesiredDocumentT, type SignedManifestT } from '@cairn/shared';
import { signDesiredFor } from '@cairn/hub/modules/deployments/desired-signer.js';
import { HubClient } from '@cairn/hub/cli/hub-client.js';
import { readFileSync } from 'node:fs';
import { median } from '../lib/stats.js';
import { startBenchHub } from '../lib/world.js';
import { table, type Benchmark } from '../lib/report.js';

const DEVICES = 10_000;
const ROUNDS = 3;
const TARGET_PER_SEC = 10_000;
const IMAGE = 'pdm-vibration-1.0.0-int8';

interface Result {
  devices: number;
  /** Wall time of each POST /api/v1/deployments for all devices (sign, store, publish, answer). */
  deploymentMs: number[];
  signOnlyMs: number;
  ed25519Ms: number;
  signAndCheckMs: number;
  publishOnlyMs: number;
  documentBytes: number;
}

const rate = (count: number, ms: number): number => (count / ms) * 1000;
const perSec = (count: number, ms: number): string => `${Math.round(rate(count, ms)).toLocaleString('en-US')} /s`;

export const desiredFanout: Benchmark<Result> = {
  name: 'desired',
  async run(dir) {
    const bench = await startBenchHub(join(dir, 'hub'));
    try {
      const { hub } = bench;
      const ctx = hub.ctx;
      const ids = Array.from({ length: DEVICES }, (_, i) => `fleet-${String(i).padStart(5, '0')}`);
      const now = Date.now();
      ctx.db.transaction(() => ids.forEach((id) => ctx.devices.markOnline(id, 1, '0.1.0', now)))();
      const model = await bench.publish(IMAGE);
      const client = new HubClient(hub.httpUrl, readFileSync(hub.adminToken.tokenFile, 'utf8').trim());

      const deploymentMs: number[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const start = performance.now();
        await client.request('POST', '/api/v1/deployments', { model, deviceIds: ids });
        deploymentMs.push(performance.now() - start);
      }

      const [name, version] = model.split('@') as [string, string];
      const bundle = freezeCanonical(ctx.registry.get(name, version)!.bundle as SignedManifestT);
      const documents = ids.map((deviceId): DesiredDocumentT => ({ deviceId, seq: 1, issuedAt: now, expiresAt: now + 3_600_000, deploymentId: 'bench', keyring: freezeCanonical(ctx.keys.signedKeyring), bundle }));
      let start = performance.now();
      for (const document of documents) ctx.keys.signDesired(document);
      const signOnlyMs = performance.now() - start;

      // The floor: Ed25519 over the same canonical bytes, already built (node:crypto, the hub's implementation).
      const messages = documents.map((d) => canonicalBytes(d));
      const seed = randomBytes(32);
      start = performance.now();
      for (const message of messages) ed25519.sign(message, seed);
      const ed25519Ms = performance.now() - start;

      start = performance.now();
      const rows = ids.map((deviceId) => signDesiredFor(ctx, deviceId, 'bench', bundle));
      const signAndCheckMs = performance.now() - start;

      const payloads = rows.map((r) => Buffer.from(r.document));
      start = performance.now();
      for (const [i, deviceId] of ids.entries()) await ctx.broker.publish(deviceTopic(deviceId, 'desired'), payloads[i]!, { qos: 1, retain: true });
      const publishOnlyMs = performance.now() - start;

      return { devices: DEVICES, deploymentMs, signOnlyMs, ed25519Ms, signAndCheckMs, publishOnlyMs, documentBytes: payloads[0]!.length };
    } finally {
      await bench.close();
    }
  },
  report(r) {
    const endToEnd = median(r.deploymentMs);
    return {
      targets: [{ what: `desired documents signed and published, ${r.devices.toLocaleString('en-US')} devices (median of ${r.deploymentMs.length} deployments)`, measured: perSec(r.devices, endToEnd), target: `≥ ${TARGET_PER_SEC.toLocaleString('en-US')} /s`, met: rate(r.devices, endToEnd) >= TARGET_PER_SEC }],
      details: [
        `### Desired documents for ${r.devices.toLocaleString('en-US')} devices`,
        `One \`POST /api/v1/deployments\` naming every device: sign, store (one SQLite transaction), publish retained into the embedded broker one at a time, answer. Each document is ${(r.documentBytes / 1024).toFixed(1)} KiB (it embeds the keyring and the signed manifest of \`${IMAGE}\`). The parts below ran in the same process on the same devices.`,
        table(
          ['step', 'time for all devices', 'rate', 'share of the deployment'],
          [
            ['deployment end to end (each round)', r.deploymentMs.map((m) => `${(m / 1000).toFixed(2)} s`).join(', '), perSec(r.devices, endToEnd), '100 %'],
            ['Ed25519 over the canonical bytes, already built (the floor)', `${(r.ed25519Ms / 1000).toFixed(2)} s`, perSec(r.devices, r.ed25519Ms), `${((r.ed25519Ms / endToEnd) * 100).toFixed(0)} %`],
            ['director signature (canonical JSON with the memoized keyring and manifest + Ed25519)', `${(r.signOnlyMs / 1000).toFixed(2)} s`, perSec(r.devices, r.signOnlyMs), `${((r.signOnlyMs / endToEnd) * 100).toFixed(0)} %`],
            ['signature + the hub verifying its own output (signDesiredFor)', `${(r.signAndCheckMs / 1000).toFixed(2)} s`, perSec(r.devices, r.signAndCheckMs), `${((r.signAndCheckMs / endToEnd) * 100).toFixed(0)} %`],
            ['publishing signed documents into the broker', `${(r.publishOnlyMs / 1000).toFixed(2)} s`, perSec(r.devices, r.publishOnlyMs), `${((r.publishOnlyMs / endToEnd) * 100).toFixed(0)} %`],
          ],
        ),
      ].join('\n\n'),
    };
  },
};
