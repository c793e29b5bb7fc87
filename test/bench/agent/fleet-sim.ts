/**
 * The fleet benchmark's simulator process: exactly what `cairn-agent simulate` runs
 * (`simulateFleet`), with the one setting its command line does not offer — the simulated
 * source's interval. Usage: `node fleet-sim.js <hubUrl> <devices> <stateRoot> <sourceIntervalMs>` (env
 * `CAIRN_BENCH_HEALTH`: health-policy defaults as JSON).
 * Prints `started` once every agent has started; SIGTERM stops the fleet gracefully.
 */
import pino from 'pino';
import { simulateFleet } from '@cairn/agent';

const [hubUrl, devices, stateRoot, sourceIntervalMs] = process.argv.slice(2);
if (!hubUrl || !devices || !stateRoot || !sourceIntervalMs) throw new Error('usage: fleet-sim <hubUrl> <devices> <stateRoot> <sourceIntervalMs>');
const token = process.env['CAIRN_AGENT_ENROLLMENT_TOKEN'];
// Optional health-policy defaults as JSON (the `health` setting of agent.yaml), for benchmarks
// that measure the rollout machinery rather than the default 30 s / 20-inference trial.
const health = process.env['CAIRN_BENCH_HEALTH'];
const fleet = await simulateFleet({
  hubUrl,
  devices: Number(devices),
  stateRoot,
  sourceIntervalMs: Number(sourceIntervalMs),
  logger: pino({ level: 'warn' }),
  ...(token ? { enrollmentToken: token } : {}),
  ...(health ? { health: JSON.parse(health) as Parameters<typeof simulateFleet>[0]['health'] } : {}),
});
process.stdout.write('started\n');
process.once('SIGTERM', () => void fleet.stop().then(() => process.exit(0)));
