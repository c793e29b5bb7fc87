/**
 * The console's live channel switches itself from polling to issue 7's event stream. This
 * branch's hub has no `GET /api/v1/stream` and answers it 404 (really: the request goes to the
 * hub). Then the test makes the browser's stream requests reach a small server-sent-events
 * server of its own on 127.0.0.1 (playwright's request routing), standing in for the hub after the
 * merge: the console must switch to it, resume with `Last-Event-ID`, and refetch on events.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startConsole } from '../helpers/console.js';
import { waitFor } from '../helpers/wait.js';

test('live stream: polling while the hub answers 404, then the stream with Last-Event-ID resume and event-driven refetches', async (t) => {
  const c = await startConsole(t);
  const { page } = c;

  // One event per connection that asks for it; the body ends, so the browser reconnects after
  // `retry` ms, exactly as after a dropped connection.
  const seen: (string | undefined)[] = [];
  let next: string | null = 'id: 7\nevent: device\ndata: {"deviceId":"sim-0001","online":true}\n\n';
  const sse = createServer((request, response) => {
    seen.push(request.headers['last-event-id'] as string | undefined);
    response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    response.end(`retry: 300\n${next ?? ': heartbeat\n\n'}`);
    next = null;
  });
  await new Promise<void>((resolve) => sse.listen(0, '127.0.0.1', resolve));
  t.after(() => sse.close());
  let hubHasStream = false;
  await page.route('**/api/v1/stream', (route) =>
    hubHasStream ? route.continue({ url: `http://127.0.0.1:${(sse.address() as AddressInfo).port}/api/v1/stream` }) : route.continue(),
  );
  let deviceListRequests = 0;
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/v1/devices') deviceListRequests += 1;
  });

  await c.signInAs('admin');
  const mode = page.getByTestId('live-mode');
  await waitFor('polling while the hub has no stream', async () => (await mode.getAttribute('data-mode')) === 'polling');
  const polled = deviceListRequests;
  await waitFor('the fleet is polled', () => deviceListRequests >= polled + 2, { timeoutMs: 20_000 });

  // The hub gains the stream: the console's next probe (every 30 s) finds it and switches.
  hubHasStream = true;
  await waitFor('stream mode', async () => (await mode.getAttribute('data-mode')) === 'stream', { timeoutMs: 60_000 });
  assert.equal(seen[0], undefined, 'the first connection has no id to resume from');
  await waitFor('a reconnect resumes from the last event id', () => seen.includes('7'));

  // An event makes the fleet refetch (in stream mode nothing polls).
  const before = deviceListRequests;
  next = 'id: 8\nevent: device\ndata: {"deviceId":"sim-0001","online":false}\n\n';
  await waitFor('refetch on a device event', () => next === null && deviceListRequests > before);
  await waitFor('resumes from the newer id', () => seen.includes('8'));
  assert.equal(await mode.getAttribute('data-mode'), 'stream');
  assert.deepEqual(c.browser.pageErrors, []);
});
