import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import pino from 'pino';
import { StateStore, cleanState, STATE_FILE, type ActiveStateT, type AgentState } from '@cairn/agent/components/state-store.js';

const silent = pino({ level: 'silent' });

async function tempDir(t: { after: (fn: () => Promise<void>) => void }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'cairn-agent-state-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

function recordingLogger(): { logger: pino.Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

async function open(stateDir: string, clock = () => 1_700_000_000_000, logger: pino.Logger = silent): Promise<StateStore> {
  const store = new StateStore({ stateDir, logger, clock });
  await store.start();
  return store;
}

const ACTIVE: ActiveStateT = {
  digest: 'a'.repeat(64),
  deploymentId: 'dep-1',
  manifest: {
    schema: 'cairn.bundle/v1',
    name: 'demo',
    version: '1.0.0',
    releaseCounter: 1,
    createdAt: 1,
    files: [{ role: 'model', path: 'model.onnx', digest: 'a'.repeat(64), size: 10, mediaType: 'application/onnx' }],
    inputs: [{ name: 'features', type: 'float32', dims: ['batch', 16] }],
    outputs: [{ name: 'probabilities', type: 'float32', dims: ['batch', 4] }],
    compatibility: { minAgentVersion: '0.1.0' },
  },
};

test('a missing state.json starts clean, with counters from the clock, and says so', async (t) => {
  const dir = await tempDir(t);
  const { logger, lines } = recordingLogger();
  const store = await open(join(dir, 'nested', 'state'), undefined, logger);
  // A reflashed device keeps its id: epoch and telemetry seq must not restart below what the
  // hub has already seen, so they start at the clock (ms), not at 0.
  assert.deepEqual(store.state, cleanState(1_700_000_000_000));
  assert.ok(lines.some((l) => String(l.msg).includes('no state.json')));
});

test('every field survives a restart', async (t) => {
  const dir = await tempDir(t);
  const store = await open(dir);
  await store.update((s) => {
    s.epoch = 7;
    s.lastDesiredSeq = 12;
    s.lastFingerprint = '{"x":1}';
    s.keyringVersion = 3;
    s.slots.A = ACTIVE;
    s.activeSlot = 'A';
    s.target = { deploymentId: 'dep-1', seq: 12, bundle: null };
    s.deployment = { deploymentId: 'dep-1', seq: 12, phase: 'committed', digest: ACTIVE.digest };
    s.telemetrySeqCeiling = 99;
  });
  const again = await open(dir);
  assert.deepEqual(again.state, store.state);
  assert.equal(again.state.telemetrySeqCeiling, 99);
});

test('writes are atomic: no temp files are left, stale ones are cleaned up on start', async (t) => {
  const dir = await tempDir(t);
  const store = await open(dir);
  await Promise.all(Array.from({ length: 20 }, (_, i) => store.update((s) => void (s.telemetrySeqCeiling = i + 1))));
  assert.deepEqual(await readdir(dir), [STATE_FILE]);
  await writeFile(join(dir, `.${STATE_FILE}.999.1.tmp`), '{"half":');
  const again = await open(dir);
  assert.equal(again.state.telemetrySeqCeiling, 20);
  assert.deepEqual((await readdir(dir)).sort(), [STATE_FILE, `${STATE_FILE}.last-good`]);
});

test('update resolves only once its change is on disk, and concurrent updates coalesce in order', async (t) => {
  const dir = await tempDir(t);
  const store = await open(dir);
  const pending = [];
  for (let i = 1; i <= 50; i++) pending.push(store.update((s) => void (s.epoch = i)).then(async () => JSON.parse(await readFile(join(dir, STATE_FILE), 'utf8')) as AgentState));
  const seen = await Promise.all(pending);
  seen.forEach((state, i) => assert.ok(state.epoch >= i + 1, `update ${i + 1} resolved before it was written (file had epoch ${state.epoch})`));
  assert.equal(seen.at(-1)!.epoch, 50);
});

test('a corrupt state.json starts clean, is kept aside, and counters restart above any old value', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, STATE_FILE), '{"version":1,"epoch":');
  const { logger, lines } = recordingLogger();
  const store = await open(dir, () => 1_700_000_000_123, logger);
  assert.equal(store.state.lastDesiredSeq, -1);
  assert.equal(store.state.activeSlot, null);
  assert.equal(store.state.telemetrySeqCeiling, 1_700_000_000_123, 'the hub dedupes on (device, seq): seqs must not restart at 0');
  assert.equal(store.state.epoch, 1_700_000_000_123);
  const warning = lines.find((l) => l.level === 40);
  assert.match(String(warning?.msg), /unusable.*not JSON/);
  assert.ok((await readdir(dir)).includes(`${STATE_FILE}.corrupt-1700000000123`));
});

test('a state.json that breaks the schema starts clean and names the problem', async (t) => {
  const dir = await tempDir(t);
  await writeFile(join(dir, STATE_FILE), JSON.stringify({ ...cleanState(), telemetrySeqCeiling: -5 }));
  const { logger, lines } = recordingLogger();
  const store = await open(dir, () => 5, logger);
  assert.equal(store.state.telemetrySeqCeiling, 5);
  assert.match(String(lines.find((l) => l.level === 40)?.msg), /schema.*telemetrySeqCeiling/);
});

test('property: after any sequence of updates, a reload sees exactly the last state', async (t) => {
  const dir = await tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({ epoch: fc.nat(), lastDesiredSeq: fc.integer({ min: -1, max: 1e9 }), keyringVersion: fc.nat(100), telemetrySeqCeiling: fc.nat(), fingerprint: fc.option(fc.string(), { nil: null }) }),
        { minLength: 1, maxLength: 8 },
      ),
      async (changes) => {
        const stateDir = join(dir, String(run++));
        const store = await open(stateDir);
        await Promise.all(
          changes.map((c) =>
            store.update((s) => {
              s.epoch = c.epoch;
              s.lastDesiredSeq = c.lastDesiredSeq;
              s.keyringVersion = c.keyringVersion;
              s.telemetrySeqCeiling = c.telemetrySeqCeiling;
              s.lastFingerprint = c.fingerprint;
            }),
          ),
        );
        const reloaded = await open(stateDir);
        assert.deepEqual(reloaded.state, store.state);
      },
    ),
    { numRuns: 25 },
  );
});

test('a corrupt state.json falls back to the last-good copy of this boot: the committed slot survives', async (t) => {
  const dir = await tempDir(t);
  const first = await open(dir, () => 1_000);
  await first.update((s) => {
    s.slots.A = ACTIVE;
    s.activeSlot = 'A';
    s.telemetrySeqCeiling = 500;
  });
  await open(dir, () => 2_000); // this boot keeps a last-good copy of what it started from
  await writeFile(join(dir, STATE_FILE), '{"version":2,"epoch":'); // damaged afterwards
  const { logger, lines } = recordingLogger();
  const store = await open(dir, () => 3_000, logger);
  assert.equal(store.state.activeSlot, 'A');
  assert.deepEqual(store.state.slots.A, ACTIVE);
  assert.equal(store.state.telemetrySeqCeiling, 3_000, 'counters restart above anything the lost file may have used');
  assert.match(String(lines.find((l) => l.level === 40)?.msg), /last-good/);
});

test('a version 1 state.json is migrated: its active bundle becomes the committed slot A', async (t) => {
  const dir = await tempDir(t);
  const { slots: _slots, activeSlot: _activeSlot, trial: _trial, loading: _loading, quarantine: _quarantine, telemetrySeqCeiling, ...rest } = cleanState(7);
  await writeFile(join(dir, STATE_FILE), JSON.stringify({ ...rest, version: 1, active: ACTIVE, nextTelemetrySeq: telemetrySeqCeiling }));
  const store = await open(dir);
  assert.equal(store.state.version, 2);
  assert.equal(store.state.activeSlot, 'A');
  assert.deepEqual(store.state.slots, { A: ACTIVE, B: null });
  assert.equal(store.state.telemetrySeqCeiling, 7, "version 1's next telemetry seq becomes the ceiling");
});
