/**
 * The drift hysteresis (pure state machine), the webhook retry backoff and the webhook
 * signature: the parts of alerting and delivery that need no hub.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { CLOSED_DRIFT_STATE, countDriftAlerts, stepDrift, type DriftHysteresisState, type DriftStatus } from '@cairn/hub/modules/alerts/drift-hysteresis.js';
import { retryDelayMs } from '@cairn/hub/modules/webhooks/webhook-delivery.js';
import { signWebhook, verifyWebhook } from '@cairn/hub/modules/webhooks/webhook-signature.js';

const config = { openAfter: 2, resolveAfter: 6 };

/** Replays statuses and returns the transitions in order (o = open, r = resolve). */
function transitions(statuses: DriftStatus[], c = config): string {
  let state: DriftHysteresisState = CLOSED_DRIFT_STATE;
  let out = '';
  for (const s of statuses) {
    const step = stepDrift(state, s, c);
    state = step.state;
    if (step.transition) out += step.transition[0];
  }
  return out;
}

const rep = (s: DriftStatus, n: number): DriftStatus[] => Array.from({ length: n }, () => s);

test('opens after openAfter consecutive alert summaries, resolves after resolveAfter consecutive ok', () => {
  assert.equal(transitions(['alert']), '');
  assert.equal(transitions(['alert', 'alert']), 'o');
  assert.equal(transitions(['alert', 'alert', ...rep('ok', 5)]), 'o', 'five ok do not resolve');
  assert.equal(transitions(['alert', 'alert', ...rep('ok', 6)]), 'or');
  assert.equal(transitions(['alert', 'alert', ...rep('alert', 10)]), 'o', 'an open alert does not reopen');
});

test('warn holds the state and breaks both streaks', () => {
  assert.equal(transitions(['alert', 'warn', 'alert']), '', 'alert, warn, alert is not two consecutive alerts');
  assert.equal(transitions(['alert', 'alert', ...rep('ok', 5), 'warn', ...rep('ok', 5)]), 'o', 'warn restarts the ok streak');
  assert.equal(transitions(['alert', 'alert', ...rep('warn', 100)]), 'o', 'warn alone never resolves');
  assert.equal(transitions(rep('warn', 100)), '', 'warn alone never opens');
});

test('a noisy window does not flap: alternating alert and ok neither opens nor, once open, resolves', () => {
  const noisy: DriftStatus[] = Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? 'alert' : 'ok'));
  assert.equal(transitions(noisy), '');
  assert.equal(transitions(['alert', 'alert', ...noisy]), 'o');
  assert.equal(countDriftAlerts(noisy, config), 0);
});

test('property: transitions alternate open/resolve, and each open is preceded by openAfter alerts in a row', () => {
  fc.assert(
    fc.property(fc.array(fc.constantFrom<DriftStatus>('ok', 'warn', 'alert'), { maxLength: 300 }), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 8 }), (statuses, openAfter, resolveAfter) => {
      const c = { openAfter, resolveAfter };
      let state: DriftHysteresisState = CLOSED_DRIFT_STATE;
      let expectOpen = true;
      statuses.forEach((s, i) => {
        const step = stepDrift(state, s, c);
        if (step.transition) {
          assert.equal(step.transition, expectOpen ? 'open' : 'resolve');
          expectOpen = !expectOpen;
          const run = statuses.slice(i + 1 - (step.transition === 'open' ? openAfter : resolveAfter), i + 1);
          assert.ok(run.length > 0 && run.every((x) => x === (step.transition === 'open' ? 'alert' : 'ok')));
        }
        assert.equal(step.state.open, step.transition === 'open' ? true : step.transition === 'resolve' ? false : state.open);
        state = step.state;
      });
    }),
  );
});

test('webhook retry delays double within [d/2, d] up to the cap, so each is at least the one before until the cap', () => {
  assert.equal(retryDelayMs(1, 1000, 60_000, () => 0), 500);
  assert.equal(retryDelayMs(1, 1000, 60_000, () => 1), 1000);
  assert.equal(retryDelayMs(3, 1000, 60_000, () => 0), 2000);
  assert.equal(retryDelayMs(30, 1000, 60_000, () => 1), 60_000, 'capped');
  assert.equal(retryDelayMs(1000, 1000, 60_000, () => 1), 60_000, 'no overflow');
  fc.assert(
    // 1000·2^9 = 512,000 ≤ 600,000: attempt 10's delay is the last uncapped one.
    fc.property(fc.integer({ min: 1, max: 9 }), fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (n, a, b) => {
      assert.ok(retryDelayMs(n + 1, 1000, 600_000, () => b) >= retryDelayMs(n, 1000, 600_000, () => a));
    }),
  );
});

test('webhook signatures: HMAC-SHA256 over "timestamp.body"; a wrong secret, body, timestamp or stale time fails', () => {
  const secret = 'a-secret-of-sixteen+';
  const body = '{"id":"1","type":"work_order.opened"}';
  const now = 1_700_000_000_000;
  const ts = String(now / 1000);
  const signature = signWebhook(secret, ts, body);
  assert.match(signature, /^sha256=[0-9a-f]{64}$/);
  assert.ok(verifyWebhook(secret, ts, body, signature, now));
  assert.ok(verifyWebhook(secret, ts, Buffer.from(body), signature, now + 299_000), 'bytes and within tolerance');
  assert.ok(!verifyWebhook('another-secret-xxxxx', ts, body, signature, now));
  assert.ok(!verifyWebhook(secret, ts, body + ' ', signature, now));
  assert.ok(!verifyWebhook(secret, String(now / 1000 + 1), body, signature, now));
  assert.ok(!verifyWebhook(secret, ts, body, signature, now + 301_000), 'stale');
  assert.ok(!verifyWebhook(secret, ts, body, signature.slice(0, -1), now), 'truncated');
});
