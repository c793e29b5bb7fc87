/**
 * The chunk record of a partial download (`blobs/partial/<digest>.chunks`): what it claims comes
 * back exactly, and a record that does not belong to this blob and this partial file is unusable
 * (the download then starts again from zero), never trusted.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { BlobStore } from '@cairn/agent/adapters/blob-store.js';

const DIGEST = 'ab'.repeat(32);
const OTHER = 'cd'.repeat(32);
const CHUNK = 1024;

async function store(t: TestContext): Promise<BlobStore> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-blob-store-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const blobs = new BlobStore(dir);
  await blobs.start();
  return blobs;
}

/** A partial file of `size` bytes and a record claiming `chunks` (indices). */
async function partial(blobs: BlobStore, size: number, claimed: number[], digest = DIGEST): Promise<void> {
  await writeFile(blobs.partialPathOf(digest), Buffer.alloc(size, 7));
  const chunks = new Uint8Array(Math.ceil(size / CHUNK));
  for (const i of claimed) chunks[i] = 1;
  await blobs.writeChunkRecord(digest, size, CHUNK, chunks);
}

const claimedOf = (chunks: Uint8Array): number[] => [...chunks.keys()].filter((i) => chunks[i] === 1);

test('a chunk record reads back exactly the chunks it claims', async (t) => {
  const blobs = await store(t);
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 1, max: 40 * CHUNK }), fc.infiniteStream(fc.boolean()), async (size, bits) => {
      const total = Math.ceil(size / CHUNK);
      const claimed = [...bits.take(total)].flatMap((on, i) => (on ? [i] : []));
      await partial(blobs, size, claimed);
      const read = await blobs.readChunkRecord(DIGEST, size, CHUNK);
      assert.equal(read.kind, 'ok');
      assert.deepEqual(read.kind === 'ok' ? claimedOf(read.chunks) : null, claimed);
    }),
    { numRuns: 60 },
  );
});

test('a record that does not belong to this blob or this partial file is unusable', async (t) => {
  const blobs = await store(t);
  const size = 5 * CHUNK + 10;
  await partial(blobs, size, [0, 1, 5]);
  const good = await readFile(blobs.chunkRecordPathOf(DIGEST), 'utf8');
  const record = JSON.parse(good) as Record<string, unknown>;
  const unusable: Array<[string, string]> = [
    ['truncated', good.slice(0, 30)],
    ['not an object', '[]'],
    ['another format', JSON.stringify({ ...record, format: 'cairn.partial/v0' })],
    ['an unknown field', JSON.stringify({ ...record, extra: 1 })],
    ['another digest', JSON.stringify({ ...record, digest: OTHER })],
    ['another size', JSON.stringify({ ...record, size: size + 1 })],
    ['another chunk size', JSON.stringify({ ...record, chunkBytes: CHUNK * 2 })],
    ['a bitmap too long', JSON.stringify({ ...record, chunks: Buffer.from([0b100011, 0]).toString('base64') })],
    ['a bit beyond the last chunk', JSON.stringify({ ...record, chunks: Buffer.from([0b1000_0001]).toString('base64') })],
    ['a bitmap that is not base64', JSON.stringify({ ...record, chunks: '!!' })],
  ];
  for (const [what, text] of unusable) {
    await writeFile(blobs.chunkRecordPathOf(DIGEST), text);
    assert.equal((await blobs.readChunkRecord(DIGEST, size, CHUNK)).kind, 'unusable', what);
  }

  // The record is right, but the partial file lost its tail (it claims chunk 5) or is gone.
  await writeFile(blobs.chunkRecordPathOf(DIGEST), good);
  assert.equal((await blobs.readChunkRecord(DIGEST, size, CHUNK)).kind, 'ok');
  await truncate(blobs.partialPathOf(DIGEST), 5 * CHUNK + 9);
  assert.equal((await blobs.readChunkRecord(DIGEST, size, CHUNK)).kind, 'unusable', 'a file shorter than the chunks claimed');
  await rm(blobs.partialPathOf(DIGEST));
  assert.equal((await blobs.readChunkRecord(DIGEST, size, CHUNK)).kind, 'unusable', 'a record without its partial file');
  await rm(blobs.chunkRecordPathOf(DIGEST));
  assert.equal((await blobs.readChunkRecord(DIGEST, size, CHUNK)).kind, 'none');
});

test('partial downloads are removed and committed with their records', async (t) => {
  const blobs = await store(t);
  await partial(blobs, 3 * CHUNK, [0], DIGEST);
  await partial(blobs, 3 * CHUNK, [1], OTHER);
  const dir = join(blobs.root, 'partial');
  await writeFile(join(dir, `.${OTHER}.chunks.123.1.tmp`), 'a write a crash interrupted');

  await blobs.removePartialsExcept(DIGEST);
  assert.deepEqual((await readdir(dir)).sort(), [DIGEST, `${DIGEST}.chunks`]);

  await blobs.commitPartial(DIGEST);
  assert.deepEqual(await readdir(dir), []);
  assert.ok(await blobs.has(DIGEST));

  await partial(blobs, 3 * CHUNK, [1], OTHER);
  await blobs.removePartial(OTHER);
  assert.deepEqual(await readdir(dir), []);
});
