/**
 * The console in a real browser (Debian's chromium through playwright-core) against a real hub
 * with a simulated fleet: sign in through the form (session cookie), see the fleet, filter it,
 * follow a deployment live, sign out, sign in as a viewer.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { startConsole } from '../helpers/console.js';
import { screenshot } from '../helpers/browser.js';
import { waitFor } from '../helpers/wait.js';

const DEVICES = 6;

test('fleet page: password sign-in, live device list, selector filter, deployment progress', async (t) => {
  const { hub, browser, page, fleet } = await startConsole(t, { devices: DEVICES, model: 'pdm@1.0.0' });
  assert.ok(fleet);

  const signIn = async (username: string, password: string) => {
    await page.getByTestId('username-input').fill(username);
    await page.getByTestId('password-input').fill(password);
    await page.getByTestId('sign-in-submit').click();
  };

  // Without a session: the sign-in panel; a wrong password is refused with the one error banner.
  await page.goto(hub.httpUrl);
  await signIn('admin', 'not-the-password');
  await page.getByTestId('error-banner').waitFor();
  assert.equal(await page.getByTestId('error-banner').getAttribute('data-error-code'), 'CAIRN_BAD_CREDENTIALS');
  await screenshot(page, 'console-signin-refused');

  // The admin's password from <data>/admin-password signs in; the session is an HttpOnly cookie
  // the page's scripts cannot read, and nothing is kept in the page's storage.
  await signIn('admin', readFileSync(hub.adminPasswordFile, 'utf8').trim());
  await page.getByTestId('device-row').nth(DEVICES - 1).waitFor();
  assert.equal((await page.getByTestId('whoami').textContent())?.replace(/\s+/g, ' ').trim(), 'admin admin');
  const [cookie] = await browser.context.cookies(hub.httpUrl);
  assert.equal(cookie?.name, 'cairn_session');
  assert.equal(cookie?.httpOnly, true);
  assert.equal(cookie?.sameSite, 'Strict');
  assert.equal(await page.evaluate('document.cookie'), '');
  assert.equal(await page.evaluate('sessionStorage.length + localStorage.length'), 0);
  assert.equal(await page.getByTestId('device-row').count(), DEVICES);
  await waitFor('online counter', async () => (await page.getByTestId('summary-online').textContent())?.trim() === String(DEVICES));
  const ids = await page.getByTestId('device-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-device-id')));
  assert.deepEqual(ids.sort(), fleet.agents.map((a) => a.deviceId).sort());

  // Filtering by a label shows exactly the devices the hub's selector query returns.
  const plant1 = (await hub.api('GET', '/api/v1/devices?selector=site%3Dplant-1')).body.devices.map((d: { id: string }) => d.id).sort();
  assert.ok(plant1.length > 0 && plant1.length < DEVICES, 'the seed spreads devices over sites');
  await page.getByTestId('device-filter').fill('site=plant-1');
  await waitFor('filtered rows', async () => (await page.getByTestId('device-row').count()) === plant1.length);
  const shown = await page.getByTestId('device-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-device-id')));
  assert.deepEqual(shown.sort(), plant1);

  // The selector is validated as it is typed: a half-typed selector is marked invalid, names the
  // position, and leaves the last valid filter applied.
  await page.getByTestId('device-filter').fill('site=plant-1,line in (');
  assert.equal(await page.getByTestId('device-filter').getAttribute('data-valid'), 'false');
  assert.match((await page.getByTestId('device-filter-hint').textContent()) ?? '', /position \d+/);
  assert.equal(await page.getByTestId('device-row').count(), plant1.length);
  await page.getByTestId('device-filter').fill('');
  await waitFor('unfiltered rows', async () => (await page.getByTestId('device-row').count()) === DEVICES);

  // A deployment made through the API appears in the page without a reload.
  const deployment = await hub.api('POST', '/api/v1/deployments', { model: 'pdm@1.0.0', selector: 'site=plant-1' });
  assert.equal(deployment.status, 201);
  await waitFor(
    'committed phases in the page',
    async () => (await page.locator('[data-testid="deployment-phase"][data-phase="committed"]').count()) === plant1.length,
    { timeoutMs: 60_000 },
  );
  const models = await page.locator(`[data-testid="device-row"][data-device-id="${plant1[0]}"] [data-testid="device-model"]`).textContent();
  assert.match(models ?? '', /pdm@1\.0\.0/);
  assert.equal((await page.getByTestId('summary-serving').textContent())?.trim(), String(plant1.length));
  await screenshot(page, 'console-fleet');

  await page.setViewportSize({ width: 390, height: 800 });
  await screenshot(page, 'console-fleet-narrow');
  await page.setViewportSize({ width: 1280, height: 800 });

  // A model version's page: signing key and lineage; the audit log filtered by action.
  await page.getByTestId('nav-models').click();
  await page.locator('[data-testid="model-row"] a').first().click();
  await page.getByTestId('model-detail').getByTestId('lineage').waitFor();
  assert.match((await page.getByTestId('lineage').textContent()) ?? '', /Signing keys/);
  await screenshot(page, 'console-model');
  await page.getByTestId('nav-audit').click();
  await page.getByTestId('audit-row').first().waitFor();
  await page.getByTestId('audit-action').fill('deployment.create');
  await page.getByTestId('audit-apply').click();
  await waitFor('audit filtered', async () => {
    const actions = await page.getByTestId('audit-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action')));
    return actions.length === 1 && actions[0] === 'deployment.create';
  });
  await screenshot(page, 'console-audit');

  // Signing out ends the session on the hub: a reload shows the sign-in panel again.
  await page.getByTestId('sign-out').click();
  await page.getByTestId('sign-in').waitFor();
  await page.reload();
  await page.getByTestId('sign-in').waitFor();

  // A viewer signs in where the page was (the audit log, an operator's page: they are told so)
  // and sees the fleet and their role.
  await signIn('watcher', await hub.createUser('watcher', 'viewer'));
  await page.getByText('Reading the audit log needs the operator role.').waitFor();
  await page.getByTestId('nav-fleet').click();
  await page.getByTestId('device-row').nth(DEVICES - 1).waitFor();
  assert.equal(await page.getByTestId('role').getAttribute('data-role'), 'viewer');
  assert.deepEqual(browser.pageErrors, []);
});
