/**
 * Browser harness for the console's end-to-end tests (DESIGN §7): playwright-core driving Debian's
 * chromium. Nothing here ever downloads a browser; when chromium is missing the error says how to
 * install it.
 *
 *   const browser = await launchBrowser();
 *   t.after(() => browser.close());
 *   await browser.page.goto(hubUrl);   // then sign in through the form
 */
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';

/** Debian's package; CAIRN_CHROMIUM points elsewhere on other systems. */
export const CHROMIUM_PATH = process.env.CAIRN_CHROMIUM ?? '/usr/bin/chromium';

/** Flags for a quiet, offline-friendly headless run in a container (no sandbox: we run as root). */
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** test/dist/helpers/browser.js → the repository root, whatever the working directory. */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const SCREENSHOT_DIR = join(REPO_ROOT, 'test-artifacts', 'screenshots');

export interface LaunchOptions {
  viewport?: { width: number; height: number };
  colorScheme?: 'light' | 'dark';
}

export interface TestBrowser {
  context: BrowserContext;
  page: Page;
  /** Uncaught exceptions thrown in any page of the context; a test can assert it stays empty. */
  pageErrors: Error[];
  /** Closes the browser and removes its temporary profile. Safe to call twice. */
  close(): Promise<void>;
}

export async function launchBrowser(options: LaunchOptions = {}): Promise<TestBrowser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(`chromium not found at ${CHROMIUM_PATH}; install Debian's package (apt-get install -y chromium) or set CAIRN_CHROMIUM`);
  }
  const profileDir = await mkdtemp(join(tmpdir(), 'cairn-chromium-'));
  let context: BrowserContext;
  try {
    context = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM_PATH,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: options.viewport ?? { width: 1280, height: 800 },
      colorScheme: options.colorScheme ?? 'light',
      // Screenshots show settled pages: the console honours reduced motion by turning transitions off.
      reducedMotion: 'reduce',
      timeout: 30_000,
    });
  } catch (error) {
    await rm(profileDir, { recursive: true, force: true });
    throw error;
  }

  const pageErrors: Error[] = [];
  context.on('weberror', (webError) => pageErrors.push(webError.error()));
  // A persistent context opens with one blank page; reuse it rather than leaving it behind.
  const page = context.pages()[0] ?? (await context.newPage());

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      try {
        await context.close();
      } finally {
        await rm(profileDir, { recursive: true, force: true, maxRetries: 3, retryDelay: 100 });
      }
    })();
    return closing;
  };

  return { context, page, pageErrors, close };
}

/** Saves a full-page PNG to test-artifacts/screenshots/<name>.png and returns its path. */
export async function screenshot(page: Page, name: string): Promise<string> {
  if (!/^[\w.-]+$/.test(name)) throw new Error(`screenshot name ${JSON.stringify(name)} must be a plain file name`);
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, fullPage: true });
  return path;
}
