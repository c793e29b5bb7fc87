/**
 * Debian's official ONNX checker (`onnx.checker.check_model(full_check=True)` from python3-onnx),
 * the conformance reference for every model Cairn writes. Like Debian's chromium for the browser
 * tests, it is a test prerequisite (.ci/run installs both): without it the check fails with the
 * install instruction, it is never skipped or passed.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const SYSTEM_PYTHON = '/usr/bin/python3';
const CHECK_SCRIPT = 'import onnx,sys; onnx.checker.check_model(onnx.load(sys.argv[1]), full_check=True)';

/** Fails with the install instruction when the checker is missing. */
export function assertOnnxCheckerInstalled(): void {
  const probe = spawnSync(SYSTEM_PYTHON, ['-c', 'import onnx'], { encoding: 'utf8' });
  assert.equal(probe.status, 0, `${SYSTEM_PYTHON} cannot import onnx: install Debian's python3-onnx (apt-get install python3-onnx)`);
}

/** Runs the checker on one file; asserts it passes, naming the file and the checker's message. */
export function assertOnnxConforms(path: string, label = path): void {
  const result = spawnSync(SYSTEM_PYTHON, ['-c', CHECK_SCRIPT, path], { encoding: 'utf8' });
  assert.equal(result.status, 0, `${label} fails onnx.checker: ${result.stderr}`);
}
