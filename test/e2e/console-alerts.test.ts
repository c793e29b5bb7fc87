/**
 * Acknowledging an alert in the browser, against issue 7's alerts contract (GET /api/v1/alerts,
 * POST /api/v1/alerts/:id/acknowledge). A device that goes offline raises an `offline` alert after
 * `alerts.offlineAfterSeconds`; the operator acknowledges it on the alerts page and the hub says so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startConsole } from '../helpers/console.js';
import { screenshot } from '../helpers/browser.js';
import { waitFor } from '../helpers/wait.js';

test('alerts page: an offline alert appears and is acknowledged', async (t) => {
  const c = await startConsole(t, { devices: 1, hub: { alerts: { offlineAfterSeconds: 1, checkSeconds: 1, driftOpenAfter: 2, driftResolveAfter: 6, ingestGapIntervals: 5 } } });
  const { hub, page } = c;
  await c.stopFleet();
  const alert = await waitFor(
    'offline alert',
    async () => ((await hub.api('GET', '/api/v1/alerts?state=open')).body.alerts as { id: string; cause: string }[] | undefined)?.find((a) => a.cause === 'offline'),
    { timeoutMs: 30_000 },
  );

  await c.signInAs('operator-1', 'operator');
  await c.open('#/alerts');
  const row = page.locator(`[data-testid="alert-row"][data-alert-id="${alert.id}"]`);
  await row.waitFor();
  await screenshot(page, 'console-alerts');
  await row.getByTestId('alert-acknowledge').click();
  await waitFor('acknowledged on the hub', async () => (await hub.api('GET', `/api/v1/alerts/${alert.id}`)).body.state === 'acknowledged');
  await page.getByTestId('alert-state-filter').selectOption('acknowledged');
  await waitFor('the listed alert says acknowledged', async () => (await row.getAttribute('data-state')) === 'acknowledged');
  assert.equal((await hub.api('GET', `/api/v1/alerts/${alert.id}`)).body.acknowledgedBy, 'operator-1');

  // Until it is resolved, the device carries an alert badge in the fleet, and the filter finds it.
  await c.open('#/');
  await page.locator('[data-testid="device-row"][data-device-id="sim-0001"] [data-testid="alert-badge"]').waitFor();
  await page.getByTestId('attention-filter').selectOption('alerting');
  await waitFor('only the alerting device', async () => (await page.getByTestId('device-row').count()) === 1);
  assert.deepEqual(c.browser.pageErrors, []);
});
