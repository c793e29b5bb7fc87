/**
 * Webhook delivery end to end: a device's maintenance alert (real MQTT) opens a work order, and
 * a real HTTP receiver on 127.0.0.1 gets it signed, after failed attempts retried with growing
 * delays; a delivery that keeps failing becomes `failed` and stays visible; a delivery pending
 * when the hub stops is delivered by the next hub on the same data directory. The hub runs on a
 * fake clock, so each retry comes when the test moves the clock past the delivery's due time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { ConfigError, loadHubConfig } from '@cairn/hub';
import { verifyWebhook } from '@cairn/hub/modules/webhooks/webhook-signature.js';
import { connectDevice, startTestHub, type TestHub } from '../helpers/hub.js';
import { sleep, waitFor } from '../helpers/wait.js';
import { maintenanceEvent, publishAs } from '../helpers/device-messages.js';
import { startWebhookReceiver } from '../helpers/webhook-receiver.js';

const SECRET = 'whsec-test-0123456789abcdef';

interface DeliveryView {
  id: string;
  endpoint: string;
  eventType: string;
  state: string;
  attempts: number;
  nextAttemptAt: string | null;
  lastError: string | null;
}

async function deliveries(hub: TestHub, endpoint: string): Promise<DeliveryView[]> {
  return (await hub.api<{ deliveries: DeliveryView[] }>('GET', `/api/v1/webhooks?endpoint=${endpoint}`)).body.deliveries;
}

test('a maintenance alert becomes a work order delivered with a valid signature after retries with growing delays; alerts are opt-in', async (t) => {
  const clock = { now: Date.now() };
  const receiver = await startWebhookReceiver(t, (n) => (n < 3 ? 500 : 204));
  const ops = await startWebhookReceiver(t, () => 204);
  const hub = await startTestHub(t, {
    clock: () => clock.now,
    webhooks: {
      endpoints: [
        { name: 'cmms', url: receiver.url, secret: SECRET },
        { name: 'ops', url: ops.url.replace('http://', 'http://user:pw@'), secret: 'ops-secret-0123456789', events: ['alert.opened'] },
      ],
      retryBaseMs: 1000,
      retryMaxMs: 60_000,
      maxAttempts: 6,
    },
  });
  const device = await connectDevice(t, hub, 'pump-dev');
  await publishAs(device, 'pump-dev', 'events', maintenanceEvent(clock.now, 'pump-7', 'outer_race', 0.93));

  const delays: number[] = [];
  for (let attempt = 1; attempt <= 3; attempt++) {
    const [d] = await waitFor(`failed attempt ${attempt}`, async () => {
      const list = await deliveries(hub, 'cmms');
      return list[0]?.attempts === attempt && list[0].lastError === 'http_500' && list;
    });
    assert.equal(d!.state, 'pending');
    const due = Date.parse(d!.nextAttemptAt!);
    delays.push(due - clock.now);
    clock.now = due;
  }
  const [delivered] = await waitFor('the delivery', async () => (await deliveries(hub, 'cmms'))[0]?.state === 'delivered' && deliveries(hub, 'cmms'));
  assert.equal(delivered!.attempts, 4);
  // Equal jitter on a doubling base of 1 s: each delay within [d/2, d], so each is at least the one before.
  const bounds = [1000, 2000, 4000];
  delays.forEach((delay, i) => assert.ok(delay >= bounds[i]! / 2 && delay <= bounds[i]!, `delay ${i + 1} = ${delay} ms`));
  assert.ok(delays[0]! <= delays[1]! && delays[1]! <= delays[2]!, `growing delays ${delays.join(', ')}`);

  assert.equal(receiver.received.length, 4, 'no delivery after the successful one');
  const ids = new Set(receiver.received.map((r) => r.headers['x-cairn-delivery']));
  assert.equal(ids.size, 1, 'every attempt carries the same delivery id (receivers dedupe on it)');
  for (const r of receiver.received) {
    const timestamp = r.headers['x-cairn-timestamp'] as string;
    assert.ok(verifyWebhook(SECRET, timestamp, r.body, r.headers['x-cairn-signature'] as string, clock.now), 'signature verifies');
    assert.ok(!verifyWebhook('another-secret-of-16', timestamp, r.body, r.headers['x-cairn-signature'] as string, clock.now));
  }
  const last = receiver.received.at(-1)!;
  assert.equal(last.headers['x-cairn-event'], 'work_order.opened');
  assert.equal(last.headers['content-type'], 'application/json');
  const payload = JSON.parse(last.body);
  assert.equal(payload.type, 'work_order.opened');
  assert.ok(!Number.isNaN(Date.parse(payload.occurredAt)));
  assert.equal(payload.data.machine, 'pump-7');
  assert.equal(payload.data.faultClass, 'outer_race');
  assert.equal(payload.data.deviceId, 'pump-dev');

  // The opt-in endpoint gets the alert, and only that.
  await waitFor('the alert at the ops endpoint', () => ops.received.length === 1);
  assert.equal(ops.received[0]!.headers['x-cairn-event'], 'alert.opened');
  assert.equal(ops.received[0]!.headers.authorization, 'Basic ' + Buffer.from('user:pw').toString('base64'), 'credentials in the URL are used');
  assert.equal(JSON.parse(ops.received[0]!.body).data.cause, 'maintenance');

  // Acknowledging the work order is another event for cmms.
  const { workOrders } = (await hub.api('GET', '/api/v1/work-orders')).body;
  assert.equal((await hub.api('POST', `/api/v1/work-orders/${workOrders[0].id}/acknowledge`)).status, 200);
  await waitFor('work_order.acknowledged delivered', () => receiver.received.some((r) => r.headers['x-cairn-event'] === 'work_order.acknowledged'));

  const view = (await hub.api('GET', '/api/v1/webhooks')).body;
  const text = JSON.stringify(view);
  assert.ok(!text.includes(SECRET) && !text.includes('ops-secret') && !text.includes('user:pw'), 'no secret and no URL credentials in the API');
  const cmms = view.endpoints.find((e: any) => e.name === 'cmms');
  assert.deepEqual({ pending: cmms.pending, delivered: cmms.delivered, failed: cmms.failed }, { pending: 0, delivered: 2, failed: 0 });
  assert.deepEqual(cmms.events, ['work_order.opened', 'work_order.acknowledged', 'work_order.done']);
  const metrics = (await hub.api<string>('GET', '/metrics')).body;
  assert.match(metrics, /cairn_hub_webhook_deliveries_total\{result="retry"\} 3/);
  assert.match(metrics, /cairn_hub_webhook_deliveries_total\{result="delivered"\} 3/);
  assert.match(metrics, /cairn_hub_webhook_queue_depth 0/);
});

test('a delivery that keeps failing is marked failed after maxAttempts, kept and counted; the secret is never logged', async (t) => {
  const clock = { now: Date.now() };
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const receiver = await startWebhookReceiver(t, () => 500);
  const url = receiver.url.replace('http://', 'http://hookuser:hookpass@');
  const hub = await startTestHub(t, { clock: () => clock.now, logger: pino({ level: 'trace' }, sink), webhooks: { endpoints: [{ name: 'cmms', url, secret: SECRET }], retryBaseMs: 1000, maxAttempts: 2 } });
  const device = await connectDevice(t, hub, 'pump-dev');
  await publishAs(device, 'pump-dev', 'events', maintenanceEvent(clock.now, 'pump-7', 'inner_race'));
  const [first] = await waitFor('the first attempt failed', async () => (await deliveries(hub, 'cmms'))[0]?.lastError === 'http_500' && deliveries(hub, 'cmms'));
  clock.now = Date.parse(first!.nextAttemptAt!);
  const [failed] = await waitFor('the delivery failed', async () => (await deliveries(hub, 'cmms'))[0]?.state === 'failed' && deliveries(hub, 'cmms'));
  assert.equal(failed!.attempts, 2);
  assert.equal(failed!.lastError, 'http_500');
  clock.now += 3600_000;
  await sleep(600); // the loop polls every 250 ms: a failed row must not be tried again
  assert.equal(receiver.received.length, 2);
  assert.equal((await hub.api('GET', '/api/v1/webhooks?state=failed')).body.deliveries.length, 1);
  assert.match((await hub.api<string>('GET', '/metrics')).body, /cairn_hub_webhook_deliveries_total\{result="failed"\} 1/);
  const log = lines.join('');
  assert.match(log, /webhook delivery failed for good/);
  assert.ok(!log.includes(SECRET) && !log.includes('hookpass'), 'no secret or URL password in the log');
});

test('a delivery pending when the hub stops is delivered by the next hub on the same data directory', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'cairn-webhooks-'));
  t.after(() => rmSync(dataDir, { recursive: true, force: true }));
  const clock = { now: Date.now() };
  const receiver = await startWebhookReceiver(t, () => 500);
  const config = { clock: () => clock.now, keepDataDir: dataDir, webhooks: { endpoints: [{ name: 'cmms', url: receiver.url, secret: SECRET }], retryBaseMs: 1000 } };
  const first = await startTestHub(t, config);
  const device = await connectDevice(t, first, 'pump-dev');
  await publishAs(device, 'pump-dev', 'events', maintenanceEvent(clock.now, 'pump-7', 'misalignment'));
  const [pending] = await waitFor('a failed first attempt', async () => (await deliveries(first, 'cmms'))[0]?.lastError === 'http_500' && deliveries(first, 'cmms'));
  device.end(true);
  await first.close();

  receiver.answer = () => 204;
  clock.now = Date.parse(pending!.nextAttemptAt!);
  const second = await startTestHub(t, config);
  const [delivered] = await waitFor('delivered after the restart', async () => (await deliveries(second, 'cmms'))[0]?.state === 'delivered' && deliveries(second, 'cmms'));
  assert.equal(delivered!.id, pending!.id);
  assert.equal(receiver.received.length, 2);
  assert.equal(receiver.received[1]!.headers['x-cairn-delivery'], pending!.id);
  assert.equal(receiver.received[1]!.status, 204);
});

test('a webhook configuration naming an unknown event type or a name twice is refused with the other configuration errors', () => {
  assert.throws(
    () =>
      loadHubConfig({
        env: {},
        overrides: {
          webhooks: {
            endpoints: [
              { name: 'a', url: 'http://127.0.0.1:9/x', secret: SECRET, events: ['work_order.opened', 'alert.exploded' as 'alert.opened'] },
              { name: 'a', url: 'http://127.0.0.1:9/y', secret: SECRET },
            ],
          },
        },
      }),
    (err: ConfigError) => err.code === 'CAIRN_CONFIG_INVALID' && err.problems.some((p) => p.startsWith('/webhooks/endpoints/0/events/1')) && err.problems.some((p) => /the name a is used twice/.test(p)) && !err.message.includes(SECRET),
  );
});
