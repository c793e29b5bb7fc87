// Runs the compiled node:test suites (the timeout is a safety net for a hung file on a loaded
// machine, never a performance check). `npm test` builds first. Pass directories or files to run a
// subset: `node test/run.mjs test/dist/unit`.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

const args = process.argv.slice(2);
const targets = args.length > 0 ? args : ['unit', 'integration', 'system', 'e2e'].map((d) => `test/dist/${d}`).filter((d) => existsSync(d));
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=600000', ...targets], { stdio: 'inherit' });
process.exit(result.status ?? 1);
