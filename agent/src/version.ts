/** The agent's own version, read once from agent/package.json (the one source of truth). */
import { readFileSync } from 'node:fs';

function readVersion(): string {
  // dist/version.js and src/version.ts both sit one level below the package root.
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version?: unknown };
  if (typeof pkg.version !== 'string') throw new Error('agent/package.json has no version');
  return pkg.version;
}

export const AGENT_VERSION: string = readVersion();
