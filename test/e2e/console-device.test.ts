/**
 * The device page in the browser: facts and labels, and uPlot charts that draw the device's
 * telemetry (data points counted in the chart, a canvas drawn), at 1280×800 and on a narrow screen.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startConsole } from '../helpers/console.js';
import { screenshot } from '../helpers/browser.js';
import { waitFor } from '../helpers/wait.js';

test('device page: facts, labels and charts with data points', async (t) => {
  const c = await startConsole(t, { devices: 2, model: 'pdm@1.0.0', telemetryIntervalMs: 500 });
  const { hub, page } = c;
  const deployment = await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', deviceIds: ['sim-0001'] });
  assert.equal(deployment.status, 201);
  await waitFor('telemetry stored', async () => (await hub.api('GET', '/api/v1/devices/sim-0001/telemetry?limit=5')).body.points.length >= 3);

  await c.signInAs('admin');
  await page.getByTestId('device-link').first().click();
  await page.getByTestId('device-title').waitFor();
  assert.equal(await page.getByTestId('device-title').textContent(), 'sim-0001');
  assert.ok((await page.getByTestId('label-chip').count()) > 0);

  const throughput = page.getByTestId('chart-throughput');
  await waitFor('chart data points', async () => Number(await throughput.getAttribute('data-points')) >= 3, { timeoutMs: 30_000 });
  assert.equal(await throughput.locator('canvas').count(), 1, 'uPlot drew the chart');
  await waitFor('more points arrive live', async () => Number(await throughput.getAttribute('data-points')) >= 6, { timeoutMs: 30_000 });
  await waitFor('latency chart', async () => Number(await page.getByTestId('chart-latency').getAttribute('data-points')) > 0, { timeoutMs: 60_000 });
  await waitFor('deployment history', async () => (await page.getByTestId('deployment-history').count()) === 1, { timeoutMs: 60_000 });
  await screenshot(page, 'console-device');

  // A chosen range is kept in the URL, so a reload shows the same.
  await page.getByTestId('range-6h').click();
  assert.match(await page.evaluate('location.hash') as string, /range=6h/);
  await page.reload();
  await page.getByTestId('range-6h').and(page.locator('[aria-pressed="true"]')).waitFor();

  await page.setViewportSize({ width: 390, height: 800 });
  await screenshot(page, 'console-device-narrow');
  assert.deepEqual(c.browser.pageErrors, []);
});
