/**
 * Rollouts in the browser: create one through the wizard (live count of matching devices), watch
 * a stage's progress change live, pause it with confirmation; then a viewer sees the same pages
 * without a single action button.
 *
 * The progress change is made deterministic, not timed: the fleet is stopped while the rollout is
 * created (its devices stay in the cohort, offline), so the page first shows 0 committed; the
 * fleet then comes back and the page must show the device's commit without a reload.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startConsole } from '../helpers/console.js';
import { screenshot } from '../helpers/browser.js';
import { waitFor } from '../helpers/wait.js';

test('rollout wizard → live stage progress → pause; a viewer sees no action buttons', async (t) => {
  const c = await startConsole(t, { devices: 4, model: 'pdm@1.0.0' });
  const { hub, page } = c;
  const plant1 = (await hub.api('GET', '/api/v1/devices?selector=site%3Dplant-1')).body.total as number;
  assert.ok(plant1 >= 1);
  await c.stopFleet();

  await c.signInAs('admin');
  await c.open('#/rollouts');
  await page.getByTestId('empty-state').waitFor();
  await page.getByTestId('new-rollout').click();
  await page.getByTestId('rollout-wizard').waitFor();

  // The live count follows the selector as it is typed, through the hub's own selector query.
  await page.getByTestId('wizard-model').selectOption('pdm@1.0.0');
  await page.getByTestId('wizard-selector').fill('site=plant-1');
  await waitFor('live count', async () => (await page.getByTestId('wizard-count').getAttribute('data-count')) === String(plant1));
  await page.getByTestId('wizard-selector').fill('site=nowhere');
  await waitFor('live count of nothing', async () => (await page.getByTestId('wizard-count').getAttribute('data-count')) === '0');
  await page.getByTestId('wizard-selector').fill('site=plant-1');
  await waitFor('live count again', async () => (await page.getByTestId('wizard-count').getAttribute('data-count')) === String(plant1));

  // Stage 1: one device, then a long bake so the rollout is still running when we pause it.
  await page.getByTestId('stage-size-0').fill('1');
  await page.getByLabel('Stage 1 bake time').fill('1h');
  await page.getByTestId('stage-size-1').fill('100%');
  await page.getByLabel('Remove stage 3').click();
  await screenshot(page, 'console-rollout-wizard');
  await page.getByTestId('wizard-submit').click();

  await page.getByTestId('rollout-state').waitFor();
  const id = decodeURIComponent((await page.evaluate('location.hash') as string).replace('#/rollouts/', ''));
  const progress = page.getByTestId('stage-progress-0');
  assert.equal(await progress.getAttribute('data-value'), '0', 'no device can have committed while the fleet is down');
  assert.equal(await page.getByTestId('rollout-state').getAttribute('data-state'), 'running');

  await c.restartFleet();
  await waitFor('stage 1 progress changes live', async () => (await progress.getAttribute('data-value')) === '1', { timeoutMs: 90_000 });
  await screenshot(page, 'console-rollout-live');

  // Pause, confirmed in the dialog; the hub records it.
  await page.getByTestId('action-pause').click();
  await page.getByTestId('action-pause-dialog').waitFor();
  await page.getByTestId('action-pause-confirm').click();
  await waitFor('paused in the page', async () => (await page.getByTestId('rollout-state').getAttribute('data-state')) === 'paused');
  assert.equal((await hub.api('GET', `/api/v1/rollouts/${id}`)).body.state, 'paused');
  await page.getByTestId('action-resume').waitFor();
  await screenshot(page, 'console-rollout-paused');

  // A viewer: the same pages, and no button that changes anything.
  await c.signOut();
  await c.signInAs('watcher', 'viewer');
  await c.open(`#/rollouts/${id}`);
  await page.getByTestId('rollout-state').waitFor();
  assert.equal(await page.getByTestId('rollout-actions').count(), 0);
  await c.open('#/rollouts');
  await page.getByTestId('rollout-row').first().waitFor();
  assert.equal(await page.getByTestId('new-rollout').count(), 0);
  await c.open('#/models');
  await page.getByTestId('model-row').first().waitFor();
  assert.equal(await page.getByTestId('approve').count() + (await page.getByTestId('upload-submit').count()), 0);
  assert.equal(await page.getByTestId('nav-audit').count(), 0, 'the audit log is an operator route');
  assert.equal(await page.locator('main button.primary, main [data-testid^="action-"]').count(), 0);
  await screenshot(page, 'console-models-viewer');
  assert.deepEqual(c.browser.pageErrors, []);
});
