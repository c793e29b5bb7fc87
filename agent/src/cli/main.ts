#!/usr/bin/env node
/**
 * `cairn-agent`: the device's command line.
 *
 *   cairn-agent run [--config agent.yaml]
 *   cairn-agent simulate --hub URL --devices N [--state DIR] [--seed S]
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
import { simulateFleet } from '../sim/fleet.js';

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
  .command('simulate')
  .description('run a simulated fleet of agents against a hub')
  .requiredOption('--hub <url>', 'hub base URL, e.g. http://127.0.0.1:8080')
  .requiredOption('--devices <n>', 'number of simulated devices', positiveInt)
  .option('--state <dir>', 'parent directory of the devices\' state', '.cairn/sim')
  .option('--seed <s>', 'seed of labels and simulated inputs', nonNegativeInt, 1)
  .option('--mqtt <url>', 'broker URL (default: the one the hub advertises)')
  .option('--telemetry-interval <ms>', 'telemetry interval per device', positiveInt)
  .option('--log-level <level>', 'log level', 'info')
  .action(async (opts: { hub: string; devices: number; state: string; seed: number; mqtt?: string; telemetryInterval?: number; logLevel: string }) => {
    const logger = pino({ level: opts.logLevel });
    const fleet = await simulateFleet({
      hubUrl: opts.hub,
      devices: opts.devices,
      stateRoot: resolve(opts.state),
      seed: opts.seed,
      logger,
      ...(opts.mqtt ? { mqttUrl: opts.mqtt } : {}),
      ...(opts.telemetryInterval ? { telemetryIntervalMs: opts.telemetryInterval } : {}),
    });
    onSignals(() => fleet.stop());
  });

program.parseAsync(process.argv).catch(fail);
