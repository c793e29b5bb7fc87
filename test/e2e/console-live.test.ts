/**
 * The console's live channel: it follows the hub's event stream and falls back to polling on a
 * hub without one (an older hub answers `GET /api/v1/stream` 404 `CAIRN_NOT_FOUND`). The browser's
 * stream requests are routed (playwright's request routing): first answered with that 404, so the
 * console must poll; then sent to a small server-sent-events server of the test's on 127.0.0.1,
 * whose connections end after one event so the browser reconnects, so the console must switch to
 * the stream by itself, resume with `Last-Event-ID`, and refetch on events. Last, unrouted, the
 * console follows the real hub's stream.
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
    hubHasStream
      ? route.continue({ url: `http://127.0.0.1:${(sse.address() as AddressInfo).port}/api/v1/stream` })
      : route.fulfill({ status: 404, contentType: 'application/json', body: JSON.stringify({ code: 'CAIRN_NOT_FOUND', message: 'Route GET:/api/v1/stream not found' }) }),
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

  // Against the hub itself: its stream, and a fact the hub announces refetches the fleet.
  await page.unroute('**/api/v1/stream');
  await page.reload();
  await waitFor("the hub's own stream", async () => (await mode.getAttribute('data-mode')) === 'stream');
  const beforeHub = deviceListRequests;
  c.hub.ctx.bus.emit('rollout.device', { rolloutId: 'test-rollout', deviceId: 'sim-0001', state: 'assigned', reason: null });
  await waitFor('refetch on a rollout_device event from the hub', () => deviceListRequests > beforeHub);
  assert.deepEqual(c.browser.pageErrors, []);
});
