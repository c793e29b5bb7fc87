#!/usr/bin/env node
/**
 * `cairn-agent`: the device's command line.
 *
 *   cairn-agent run [--config agent.yaml]
 *   cairn-agent enroll [--config agent.yaml] [--hub URL] [--token T] [--wait]
 *   cairn-agent simulate --hub URL --devices N --token T [--state DIR] [--seed S]
 *
 * SIGINT/SIGTERM stop gracefully (offline presence, then disconnect). Errors print one line and
 * exit non-zero.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import pino from 'pino';
import { AGENT_VERSION } from '../version.js';
import { loadConfig } from '../config.js';
import { createAgent } from '../agent.js';
import { enrollOnce } from '../components/device-identity.js';
import { loadClientTls } from '../adapters/https-client.js';

const DEFAULT_CONFIG = 'agent.yaml';

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}

/** Runs `stop` once on the first SIGINT/SIGTERM, then exits; a second signal exits at once. */
function onSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(130);
    stopping = true;
    process.stderr.write(`cairn-agent: ${signal}, stopping\n`);
    stop().then(
      () => process.exit(0),
      (err: Error) => fail(err),
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`cairn-agent: ${message.replace(/\s*\n\s*/g, ' ')}\n`);
  process.exit(1);
}

const program = new Command()
  .name('cairn-agent')
  .description('Cairn edge agent: runs signed ONNX model bundles from a Cairn hub')
  .version(AGENT_VERSION);

program
  .command('run')
  .description('run the agent on this device')
  .option('-c, --config <file>', `configuration file (default: ./${DEFAULT_CONFIG} if present; CAIRN_AGENT_* variables override it)`)
  .action(async (opts: { config?: string }) => {
    const path = opts.config ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
    const config = loadConfig(path !== undefined ? { path: resolve(path) } : {});
    const logger = pino({ level: config.logLevel });
    const agent = createAgent(config, { logger });
    await agent.start();
    onSignals(() => agent.stop());
  });

program
  .command('enroll')
  .description("obtain this device's MQTT credentials from the hub (stored in the state directory)")
  .option('-c, --config <file>', `configuration file (default: ./${DEFAULT_CONFIG} if present)`)
  .option('--hub <url>', 'hub base URL (default: enrollment.hubUrl of the config)')
  .option('--token <token>', 'enrollment token from `cairn device enroll-token` (default: enrollment.token, or CAIRN_AGENT_ENROLLMENT_TOKEN); without one the device waits for `cairn device accept`')
  .option('--wait', 'without a token: keep asking until an operator accepts the device')
  .action(async (opts: { config?: string; hub?: string; token?: string; wait?: boolean }) => {
    const path = opts.config ?? (existsSync(DEFAULT_CONFIG) ? DEFAULT_CONFIG : undefined);
    const config = loadConfig(path !== undefined ? { path: resolve(path) } : {});
    const hubUrl = opts.hub ?? config.enrollment?.hubUrl;
    if (!hubUrl) throw new InvalidArgumentError('give --hub URL or set enrollment.hubUrl in the config');
    const token = opts.token ?? config.enrollment?.token;
    for (;;) {
      const tls = loadClientTls(config.tls);
      const outcome = await enrollOnce({ hubUrl, deviceId: config.deviceId, stateDir: config.stateDir, rootPublicKey: config.rootPublicKey, ...(token !== undefined ? { token } : {}), ...(tls ? { tls } : {}) });
      if (outcome.status === 'active') {
        process.stdout.write(`enrolled ${config.deviceId}: credentials stored in ${config.stateDir}; broker ${outcome.credentials.mqttUrl}\n`);
        return;
      }
      if (!opts.wait) {
        process.stdout.write(`${config.deviceId} is pending: an operator must run \`cairn device accept ${config.deviceId}\`; then run this again (or use --wait)\n`);
        return;
      }
      await new Promise((r) => setTimeout(r, outcome.retryAfterSec * 1000));
    }
  });

program
  .command('simulate')
  .description('run a simulated fleet of agents against a hub')
  .requiredOption('--hub <url>', 'hub base URL, e.g. http://127.0.0.1:8080')
  .requiredOption('--devices <n>', 'number of simulated devices', positiveInt)
  .option('--state <dir>', 'parent directory of the devices\' state', '.cairn/sim')
  .option('--seed <s>', 'seed of labels and simulated inputs', nonNegativeInt, 1)
  .option('--token <token>', 'enrollment token for the simulated devices (default: CAIRN_AGENT_ENROLLMENT_TOKEN); devices already enrolled in --state need none')
  .option('--mqtt <url>', 'broker URL (default: the one the hub advertises)')
  .option('--telemetry-interval <ms>', 'telemetry interval per device', positiveInt)
  .option('--log-level <level>', 'log level', 'info')
  .action(async (opts: { hub: string; devices: number; state: string; seed: number; token?: string; mqtt?: string; telemetryInterval?: number; logLevel: string }) => {
    const token = opts.token ?? process.env['CAIRN_AGENT_ENROLLMENT_TOKEN'];
    const logger = pino({ level: opts.logLevel });
    // Loaded here, not at the top: a device's `cairn-agent run` never needs the simulator.
    const { simulateFleet } = await import('../sim/fleet.js');
    const fleet = await simulateFleet({
      hubUrl: opts.hub,
      devices: opts.devices,
      stateRoot: resolve(opts.state),
      seed: opts.seed,
      logger,
      ...(token ? { enrollmentToken: token } : {}),
      ...(opts.mqtt ? { mqttUrl: opts.mqtt } : {}),
      ...(opts.telemetryInterval ? { telemetryIntervalMs: opts.telemetryInterval } : {}),
    });
    onSignals(() => fleet.stop());
  });

program.parseAsync(process.argv).catch(fail);
