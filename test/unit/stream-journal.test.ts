/**
 * The live stream's journal on a real SQLite file: ids, the resume decision at every edge of
 * the journal's range, and pruning that only ever removes a prefix.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '@cairn/hub/infra/db.js';
import { StreamJournal } from '@cairn/hub/modules/stream/stream-journal.js';
import { StreamClient } from '@cairn/hub/modules/stream/stream-client.js';
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { waitFor } from '../helpers/wait.js';

function journalFile(t: import('node:test').TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-journal-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'cairn.db');
}

test('a new journal starts at a random id below 2^50; ids increase by one and survive a reopen', (t) => {
  const file = journalFile(t);
  const db = openDatabase(file);
  const journal = new StreamJournal(db);
  const origin = journal.head();
  assert.ok(Number.isSafeInteger(origin) && origin >= 0 && origin < 2 ** 50);
  const first = journal.append('alert', '{}', 1);
  assert.equal(first, origin + 1);
  assert.equal(journal.append('alert', '{}', 2), origin + 2);
  db.close();

  const reopened = new StreamJournal(openDatabase(file));
  assert.equal(reopened.head(), origin + 2);
  assert.equal(reopened.append('alert', '{}', 3), origin + 3, 'the sequence goes on after a restart');
  assert.deepEqual(
    reopened.after(origin + 1, 10).map((e) => e.id),
    [origin + 2, origin + 3],
  );

  const other = new StreamJournal(openDatabase(journalFile(t)));
  assert.notEqual(other.head(), origin, 'another database starts elsewhere');
});

test('resumePoint: replay from the oldest kept id minus one to the head; too_old below; unknown_id outside [origin, head] or not a number', (t) => {
  const journal = new StreamJournal(openDatabase(journalFile(t)));
  const origin = journal.head();
  assert.deepEqual(journal.resumePoint(String(origin)), { kind: 'replay' }, 'an empty journal resumes at its origin');
  assert.deepEqual(journal.resumePoint(String(origin - 1)), { kind: 'reset', reason: 'unknown_id' });
  assert.deepEqual(journal.resumePoint(String(origin + 1)), { kind: 'reset', reason: 'unknown_id' }, 'an id not issued yet');

  for (let ts = 1; ts <= 10; ts++) journal.append('alert', `{"n":${ts}}`, ts * 1000);
  assert.equal(journal.prune(6, 0), 4, 'the newest 6 are kept');
  const oldest = journal.after(0, 1)[0]!.id;
  assert.equal(oldest, origin + 5);
  assert.deepEqual(journal.resumePoint(String(oldest - 1)), { kind: 'replay' }, 'saw everything that was pruned');
  assert.deepEqual(journal.resumePoint(String(oldest - 2)), { kind: 'reset', reason: 'too_old' });
  assert.deepEqual(journal.resumePoint(String(origin + 10)), { kind: 'replay' });
  for (const bad of ['', 'x', '-3', '1.5', '1e3', '99999999999999999']) assert.deepEqual(journal.resumePoint(bad), { kind: 'reset', reason: 'unknown_id' }, JSON.stringify(bad));

  // Everything pruned by age: only the head itself can resume.
  assert.equal(journal.prune(1000, 11_000), 6);
  assert.deepEqual(journal.resumePoint(String(origin + 10)), { kind: 'replay' });
  assert.deepEqual(journal.resumePoint(String(origin + 9)), { kind: 'reset', reason: 'too_old' });
});

test('prune by age removes a prefix by id, never a middle row, even when the clock went back', (t) => {
  const journal = new StreamJournal(openDatabase(journalFile(t)));
  const ids = [5000, 1000, 9000, 2000, 9500].map((ts) => journal.append('alert', '{}', ts));
  // Rows stamped before 3000 are ids[1] and ids[3]: the prefix up to ids[3] goes, ids[2] with it.
  assert.equal(journal.prune(100, 3000), 4);
  assert.deepEqual(
    journal.after(0, 10).map((e) => e.id),
    [ids[4]],
  );
});

test('a catch-up that pruning overtakes while it waits on a slow socket ends in reset, not in a silent gap', async (t) => {
  const db = openDatabase(journalFile(t));
  t.after(() => db.close());
  const journal = new StreamJournal(db);
  const start = journal.head();
  for (let i = 0; i < 600; i++) journal.append('alert', `{"n":${i}}`, 1000 + i);

  // A response whose socket pushes back after every write until the test lets it drain.
  const response = Object.assign(new EventEmitter(), {
    writableLength: 0,
    frames: [] as string[],
    write(frame: string) {
      this.frames.push(frame);
      return false;
    },
    destroy() {},
  });
  const resets: string[] = [];
  const client = new StreamClient(response as unknown as ServerResponse, { journal, maxBufferedBytes: 1 << 30, device: null, sent: () => undefined, dropped: () => undefined, reset: (reason) => resets.push(reason) });
  const done = client.resume(String(start));
  // The first page (256 events) is being written; meanwhile the journal keeps only its newest 100.
  await waitFor('the first frame written', () => response.frames.length === 1);
  journal.prune(100, 0);
  while (resets.length === 0 && response.frames.length < 600) {
    response.emit('drain');
    await new Promise((resolve) => setImmediate(resolve));
  }
  await done;
  assert.deepEqual(resets, ['too_old']);
  const last = response.frames.at(-1)!;
  assert.match(last, /^id: \d+\nevent: reset\ndata: \{"reason":"too_old"/);
  const ids = response.frames.slice(0, -1).map((f) => Number(/^id: (\d+)/.exec(f)![1]));
  assert.deepEqual(ids, ids.map((_, i) => start + 1 + i), 'the events sent before the reset have no gap');
  assert.ok(ids.length <= 256, 'nothing after the pruned rows was sent as if it followed them');
});
