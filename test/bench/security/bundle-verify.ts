/**
 * Verification of a 4 MB bundle on the agent (`npm run bench -- verify`), as the agent does it:
 *
 * - the desired document that names the bundle: decoded and schema-checked (`decodePayload`),
 *   then `verifyDesired` — root signature on the keyring, director signature on the document,
 *   release signature on the manifest (three Ed25519 verifications over RFC 8785 canonical JSON);
 * - the downloaded blob: `BlobStore.check` streams the partial file through SHA-256 and compares
 *   digest and size with the manifest (the gate before `blobs/sha256/`).
 *
 * Reported against a plain streaming read of the same file, in the same run, so the ratio says
 * what hashing adds over touching the bytes at all. The file is in the page cache after the
 * first round, as it is on a device right after the download wrote it.
 */
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { decodePayload, encodePayload, sha256Hex, verifyDesired } from '@cairn/shared';
import { BlobStore } from '@cairn/agent/adapters/blob-store.js';
import { createTrustFixture, desiredFor } from '../../helpers/trust-fixtures.js';
import { distribution, ms, type Distribution } from '../lib/stats.js';
import { table, type Benchmark } from '../lib/report.js';

const BYTES = 4 * 1024 * 1024;
const ROUNDS = 30;

interface Result {
  bytes: number;
  signatures: Distribution;
  digest: Distribution;
  plainRead: Distribution;
  total: Distribution;
}

async function readAll(path: string): Promise<number> {
  let n = 0;
  for await (const chunk of createReadStream(path)) n += (chunk as Buffer).length;
  return n;
}

export const bundleVerify: Benchmark<Result> = {
  name: 'verify',
  async run(dir) {
    const model = randomBytes(BYTES);
    const trust = createTrustFixture();
    const payload = encodePayload('desired', desiredFor(trust, 'bench-device', 1, model));
    const state = { deviceId: 'bench-device', rootPublicKey: trust.root.publicKey, keyringVersion: 0, lastSeq: 0, lastFingerprint: null, securityFloor: 0, agentVersion: '0.1.0', now: Date.now() };
    const blobs = new BlobStore(await mkdtemp(join(dir, 'agent-')));
    await blobs.start();
    const digest = sha256Hex(model);
    const partial = blobs.partialPathOf(digest);
    await writeFile(partial, model);
    if ((await readFile(partial)).length !== BYTES) throw new Error('the partial file was not written');

    const signatures: number[] = [];
    const digests: number[] = [];
    const reads: number[] = [];
    const totals: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      let start = performance.now();
      const decoded = decodePayload('desired', payload);
      if (!decoded.ok || verifyDesired(decoded.value, state).status !== 'accepted') throw new Error('the bench document does not verify');
      const signed = performance.now() - start;
      start = performance.now();
      const check = await blobs.check(partial, digest, BYTES);
      if (!check.ok) throw new Error('the bench blob does not verify');
      const hashed = performance.now() - start;
      start = performance.now();
      if ((await readAll(partial)) !== BYTES) throw new Error('short read');
      reads.push(performance.now() - start);
      signatures.push(signed);
      digests.push(hashed);
      totals.push(signed + hashed);
    }
    return { bytes: BYTES, signatures: distribution(signatures), digest: distribution(digests), plainRead: distribution(reads), total: distribution(totals) };
  },
  report(r) {
    const row = (what: string, d: Distribution) => [what, ms(d.p50), ms(d.p99), `${(d.p50 / r.plainRead.p50).toFixed(2)}×`];
    return {
      targets: [{ what: `verification of a ${r.bytes / 1024 / 1024} MiB bundle on the agent (signatures + SHA-256, median)`, measured: ms(r.total.p50), target: 'reported', met: null }],
      details: [
        `### Verifying a ${r.bytes / 1024 / 1024} MiB bundle on the agent`,
        `${ROUNDS} rounds; the agent's own code paths (\`decodePayload\` + \`verifyDesired\`, \`BlobStore.check\`), node:crypto Ed25519 and SHA-256.`,
        table(['step', 'median', 'p99', 'vs a plain read of the file'], [
          row('document: decode, schema, keyring + director + release signatures', r.signatures),
          row('blob: streaming SHA-256 and size check', r.digest),
          row('both (what a deployment waits for)', r.total),
          row('plain streaming read of the file (reference)', r.plainRead),
        ]),
      ].join('\n\n'),
    };
  },
};
