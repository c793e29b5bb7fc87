/**
 * What every console browser test needs: a real hub (optionally with a pushed and approved demo
 * model), a simulated fleet, and chromium signed in through the real form.
 *
 *   const c = await startConsole(t, { devices: 3, model: 'pdm@1.0.0' });
 *   await c.signInAs('admin');             // or signInAs('watcher', 'viewer')
 *   await c.open('#/rollouts');
 */
import type { TestContext } from 'node:test';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { simulateFleet } from '@cairn/agent';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import type { HubConfigInput } from '@cairn/hub';
import { startTestHub, type TestHub } from './hub.js';
import { launchBrowser, type TestBrowser } from './browser.js';
import { waitFor } from './wait.js';

export interface ConsoleOptions {
  /** Simulated devices started before the browser (0: none). */
  devices?: number;
  /** `name@version` of a demo model to push and approve first. */
  model?: string;
  telemetryIntervalMs?: number;
  hub?: HubConfigInput;
}

export interface ConsoleFixture {
  hub: TestHub;
  browser: TestBrowser;
  page: TestBrowser['page'];
  /** The running simulated fleet; `restartFleet` replaces it (same ids, keys and state). */
  fleet: Awaited<ReturnType<typeof simulateFleet>> | null;
  stopFleet(): Promise<void>;
  restartFleet(): Promise<void>;
  /** Signs in through the form; `admin` uses the hub's generated admin password, anyone else is created with `role`. */
  signInAs(username: string, role?: 'viewer' | 'operator' | 'admin'): Promise<void>;
  signOut(): Promise<void>;
  /** Navigates within the signed-in console, e.g. `#/devices/sim-0001`. */
  open(hash: string): Promise<void>;
}

export async function startConsole(t: TestContext, options: ConsoleOptions = {}): Promise<ConsoleFixture> {
  const hub = await startTestHub(t, options.hub ?? {});
  if (options.model) {
    const at = options.model.indexOf('@');
    await hub.api('POST', `/api/v1/models?name=${options.model.slice(0, at)}&version=${options.model.slice(at + 1)}`, buildDemoModel({ seed: 5 }).bytes);
    await hub.approve(options.model);
  }
  const stateRoot = mkdtempSync(join(tmpdir(), 'cairn-e2e-console-'));
  t.after(() => rmSync(stateRoot, { recursive: true, force: true }));
  const devices = options.devices ?? 0;
  const startFleet = () =>
    simulateFleet({ hubUrl: hub.httpUrl, devices, stateRoot, seed: 3, telemetryIntervalMs: options.telemetryIntervalMs ?? 500, logger: pino({ level: 'silent' }), enrollmentToken: hub.enrollment.token });
  const online = () => hub.ctx.devices.list().filter((d) => d.online).length;

  const fixture: ConsoleFixture = {
    hub,
    browser: undefined as unknown as TestBrowser,
    page: undefined as unknown as TestBrowser['page'],
    fleet: null,
    async stopFleet() {
      await fixture.fleet?.stop();
      fixture.fleet = null;
      await waitFor('fleet offline', () => online() === 0);
    },
    async restartFleet() {
      await fixture.stopFleet();
      fixture.fleet = await startFleet();
      await waitFor('fleet online again', () => online() === devices);
    },
    async signInAs(username, role = 'operator') {
      const password = username === 'admin' ? readFileSync(hub.adminPasswordFile, 'utf8').trim() : await hub.createUser(username, role);
      const { page } = fixture;
      await page.goto(hub.httpUrl);
      await page.getByTestId('username-input').fill(username);
      await page.getByTestId('password-input').fill(password);
      await page.getByTestId('sign-in-submit').click();
      await page.getByTestId('whoami').waitFor();
    },
    async signOut() {
      await fixture.page.getByTestId('sign-out').click();
      await fixture.page.getByTestId('sign-in').waitFor();
    },
    async open(hash) {
      await fixture.page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
    },
  };
  t.after(() => fixture.fleet?.stop());
  if (devices > 0) {
    fixture.fleet = await startFleet();
    await waitFor('fleet online', () => online() === devices);
  }
  fixture.browser = await launchBrowser();
  t.after(() => fixture.browser.close());
  fixture.page = fixture.browser.page;
  return fixture;
}
