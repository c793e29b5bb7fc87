/**
 * The console's initial JavaScript (issue 8: ≤ 200 KB gzipped): the scripts index.html loads and
 * preloads, gzipped as a server would send them. Pages and uPlot are separate chunks fetched on
 * navigation, so they are reported but not counted. Needs the built console (`npm run build`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { DEFAULT_CONSOLE_DIR } from '@cairn/hub/modules/console/console.plugin.js';

const LIMIT_BYTES = 200 * 1024;

/** Every `src`/`href` of a module script or module preload in index.html. */
export function initialScripts(html: string): string[] {
  const found = new Set<string>();
  for (const match of html.matchAll(/<script[^>]*type="module"[^>]*src="([^"]+)"/g)) found.add(match[1]!);
  for (const match of html.matchAll(/<link[^>]*rel="modulepreload"[^>]*href="([^"]+)"/g)) found.add(match[1]!);
  return [...found];
}

const gzipped = (path: string) => gzipSync(readFileSync(path), { level: 9 }).length;

test('initial JavaScript of the built console is at most 200 KB gzipped', (t) => {
  // `npm test` builds first: a missing console is a failure, not a reason to skip.
  assert.ok(existsSync(join(DEFAULT_CONSOLE_DIR, 'index.html')), `no built console in ${DEFAULT_CONSOLE_DIR}: run npm run build`);
  const html = readFileSync(join(DEFAULT_CONSOLE_DIR, 'index.html'), 'utf8');
  const scripts = initialScripts(html);
  assert.ok(scripts.length > 0, 'index.html loads a module script');
  const initial = scripts.reduce((sum, src) => sum + gzipped(join(DEFAULT_CONSOLE_DIR, src.replace(/^\//, ''))), 0);
  const assets = join(DEFAULT_CONSOLE_DIR, 'assets');
  const lazy = readdirSync(assets)
    .filter((name) => name.endsWith('.js') && !scripts.some((src) => src.endsWith(`/${name}`)))
    .reduce((sum, name) => sum + gzipped(join(assets, name)), 0);
  t.diagnostic(`console initial JS: ${(initial / 1024).toFixed(1)} KB gzipped (${scripts.length} file(s)); pages loaded on navigation: ${(lazy / 1024).toFixed(1)} KB gzipped`);
  assert.ok(initial <= LIMIT_BYTES, `initial JS is ${(initial / 1024).toFixed(1)} KB gzipped, over ${LIMIT_BYTES / 1024} KB`);
});
