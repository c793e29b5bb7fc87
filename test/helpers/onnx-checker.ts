/**
 * Debian's official ONNX checker (`onnx.checker.check_model(full_check=True)` from python3-onnx),
 * the conformance reference for every model Cairn writes. CI installs it (.ci/run), so there a
 * missing checker fails the test; elsewhere the check is skipped with a reason, never passed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { TestContext } from 'node:test';

const SYSTEM_PYTHON = '/usr/bin/python3';
const CHECK_SCRIPT = 'import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)';

/** True when the checker can run; otherwise skips the test (and fails it in CI). */
export function onnxCheckerReady(t: TestContext): boolean {
  if (spawnSync(SYSTEM_PYTHON, ['-c', 'import onnx'], { encoding: 'utf8' }).status === 0) return true;
  assert.ok(!process.env.CI, `${SYSTEM_PYTHON} cannot import onnx in CI`);
  t.skip(`${SYSTEM_PYTHON} cannot import onnx; install Debian's python3-onnx to run this check`);
  return false;
}

/** Runs the checker on one file; asserts it passes, naming the file and the checker's message. */
export function assertOnnxConforms(path: string, label = path): void {
  const result = spawnSync(SYSTEM_PYTHON, ['-c', CHECK_SCRIPT, path], { encoding: 'utf8' });
  assert.equal(result.status, 0, `${label} fails onnx.checker: ${result.stderr}`);
}
