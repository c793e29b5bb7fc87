/**
 * A real Mosquitto (Debian's /usr/sbin/mosquitto) for a hub's data directory, configured only
 * by the files `cairn broker config --mosquitto` writes (writeMosquittoFiles, the command's own
 * code), on a free loopback port, verbose log captured. One broker per data directory: a test
 * that restarts its hub on the same directory finds the same broker, with the hub's persistent
 * session and the retained messages in it. Stopped when the test that started it ends.
 *
 * `admit()` is the operator's step after enrollments and revocations: regenerate the files and
 * reload the broker (SIGHUP); it resolves once Mosquitto has logged the reload.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { writeMosquittoFiles, type MosquittoFilesOptions } from '@cairn/hub/cli/broker-config.js';
import { freePort } from './processes.js';
import { waitFor } from './wait.js';

export const MOSQUITTO = '/usr/sbin/mosquitto';

export interface TestMosquitto {
  url: string;
  /** Everything Mosquitto logged so far (`-v`: every packet, every denial). */
  log(): string;
  /** Regenerates the files from the hub's database and reloads the broker. */
  admit(): Promise<void>;
}

const running = new Map<string, TestMosquitto>();

/** With `tls`, the listener speaks MQTT over TLS (`mqtts://127.0.0.1:port`; the test certificates name that address). */
export async function mosquittoFor(t: TestContext, dataDir: string, tls?: MosquittoFilesOptions['tls']): Promise<TestMosquitto> {
  const known = running.get(dataDir);
  if (known) return known;
  const outDir = mkdtempSync(join(tmpdir(), 'cairn-mosquitto-'));
  const port = await freePort();
  const generate = () => writeMosquittoFiles({ dataDir, outDir, port, host: '127.0.0.1', ...(tls ? { tls } : {}) });
  const { conf } = generate();
  // Started as root, Mosquitto switches to the user `mosquitto`, who cannot read the owner-only
  // files: keep the user this test runs as (an operator chowns the files to the broker's user).
  const testConf = join(outDir, 'persistence', 'test.conf');
  writeFileSync(testConf, `user ${userInfo().username}\n${readFileSync(conf, 'utf8')}`);
  const child: ChildProcess = spawn(MOSQUITTO, ['-c', testConf, '-v'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  t.after(async () => {
    running.delete(dataDir);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(outDir, { recursive: true, force: true });
  });
  await waitFor('mosquitto listening', () => {
    if (child.exitCode !== null) throw new Error(`mosquitto exited: ${output}`);
    return /Opening ipv4 listen socket on port/.test(output) && /mosquitto version .* running/.test(output);
  });
  const reloads = () => output.split('Reloading config').length - 1;
  const broker: TestMosquitto = {
    url: `${tls ? 'mqtts' : 'mqtt'}://127.0.0.1:${port}`,
    log: () => output,
    async admit() {
      if (!existsSync(join(dataDir, 'cairn.db'))) throw new Error('the hub has no database yet');
      generate();
      const before = reloads();
      child.kill('SIGHUP');
      await waitFor('mosquitto reloaded its files', () => reloads() > before);
    },
  };
  running.set(dataDir, broker);
  return broker;
}
