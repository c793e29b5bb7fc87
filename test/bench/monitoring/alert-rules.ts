/**
 * What the alert rules cost per stored telemetry summary (monitoring issue): a real hub (built,
 * not listening; SQLite file in the work directory) with 1,000 devices, `telemetry.stored`
 * emitted on its bus as the telemetry store does after a commit. Two streams:
 * - steady: every summary `ok` — the common case, which must touch no SQL;
 * - noisy: each device alternating `alert` and `ok`, so the hysteresis streaks change on every
 *   summary without ever opening an alert (streaks are flushed to SQLite per check, not per
 *   summary) — the worst case short of alerts.
 * Reported against the ingest target's budget: 15,000 summaries/s leave 66.7 µs each for
 * everything on the hub's main thread.
 */
import { join } from 'node:path';
import { buildHub, loadHubConfig } from '@cairn/hub';
import { telemetrySummary } from '../../helpers/device-messages.js';
import { median } from '../lib/stats.js';
import { table, type Benchmark } from '../lib/report.js';

const DEVICES = 1000;
const PER_ROUND = 20_000;
const ROUNDS = 5;
const BUDGET_US = 1e6 / 15_000;

interface AlertRulesResult {
  steadyUs: number[];
  noisyUs: number[];
  alertsOpened: number;
}

export const alertRules: Benchmark<AlertRulesResult> = {
  name: 'alerts',
  async run(workDir) {
    const hub = await buildHub(loadHubConfig({ env: {}, overrides: { dataDir: join(workDir, 'alerts-hub'), logLevel: 'silent', http: { port: 0 }, mqtt: { port: 0 } } }));
    await hub.app.ready();
    try {
      const seq = new Array<number>(DEVICES).fill(0);
      const round = (status: (i: number) => 'ok' | 'alert'): number => {
        const start = process.hrtime.bigint();
        for (let i = 0; i < PER_ROUND; i++) {
          const d = i % DEVICES;
          hub.ctx.bus.emit('telemetry.stored', { deviceId: `dev-${d}`, telemetry: telemetrySummary(++seq[d]!, Date.now(), status(seq[d]!)) });
        }
        return Number(process.hrtime.bigint() - start) / 1000 / PER_ROUND;
      };
      round(() => 'ok'); // warm-up: each device's first summary stores its interval
      const steadyUs = Array.from({ length: ROUNDS }, () => round(() => 'ok'));
      const noisyUs = Array.from({ length: ROUNDS }, () => round((s) => (s % 2 === 0 ? 'alert' : 'ok')));
      return { steadyUs, noisyUs, alertsOpened: hub.ctx.alerts.summary().openAlerts };
    } finally {
      await hub.app.close();
    }
  },
  report({ steadyUs, noisyUs, alertsOpened }) {
    const steady = median(steadyUs);
    const noisy = median(noisyUs);
    return {
      targets: [
        { what: 'alert rules per telemetry summary, steady (median of rounds)', measured: `${steady.toFixed(1)} µs = ${((steady / BUDGET_US) * 100).toFixed(1)} % of 66.7 µs`, target: 'a small share of the 15,000/s budget', met: null },
        { what: 'alert rules per summary, hysteresis streak moving each time', measured: `${noisy.toFixed(1)} µs = ${((noisy / BUDGET_US) * 100).toFixed(1)} % of 66.7 µs`, target: 'reported', met: null },
      ],
      details: [
        `Alert rules on the hub's bus, ${DEVICES.toLocaleString('en')} devices, ${ROUNDS} rounds of ${PER_ROUND.toLocaleString('en')} summaries each (µs per summary):`,
        '',
        table(
          ['stream', 'median', 'min', 'max', 'ratio to steady'],
          [
            ['steady (`ok`)', steady.toFixed(1), Math.min(...steadyUs).toFixed(1), Math.max(...steadyUs).toFixed(1), '1.0'],
            ['noisy (`alert`/`ok` alternating)', noisy.toFixed(1), Math.min(...noisyUs).toFixed(1), Math.max(...noisyUs).toFixed(1), (noisy / steady).toFixed(1)],
          ],
        ),
        '',
        `Drift alerts opened by the noisy stream (hysteresis): ${alertsOpened}.`,
      ].join('\n'),
    };
  },
};
