/**
 * The rollout engine's cost at 10,000 devices, in the hub's own process (no agents: devices are
 * registered and "report" through the bus exactly as the MQTT `reported` handler does):
 *
 * - creating a one-stage (100 %) rollout: resolving the cohort, signing, storing and publishing
 *   10,000 desired documents in one evaluation;
 * - a tick with nothing to do (every device told, none reported): what every running rollout
 *   costs the hub every `rollouts.tickSeconds`;
 * - 10,000 devices reporting `committed` (each report updates the device's row and triggers a
 *   coalesced evaluation), and the tick after them, which completes the rollout;
 * - the status view (`GET /api/v1/rollouts/:id`) at 10,000 devices.
 */
import { readFileSync } from 'node:fs';
import { loadHubConfig, startHub } from '@cairn/hub';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { median, ms } from '../lib/stats.js';
import { table, type Benchmark } from '../lib/report.js';

const DEVICES = 10_000;
const IDLE_TICKS = 20;

export interface EngineResult {
  devices: number;
  createMs: number;
  idleTickMs: number[];
  reportsMs: number;
  completingTickMs: number;
  statusViewMs: number;
  state: string;
}

export const engine: Benchmark<EngineResult> = {
  name: 'engine',
  async run(dir) {
    const hub = await startHub(loadHubConfig({ env: {}, overrides: { dataDir: dir, logLevel: 'silent', http: { port: 0 }, mqtt: { port: 0 }, approval: { canaryDevices: 1_000_000 }, rollouts: { tickSeconds: 60 } } }));
    try {
      const token = readFileSync(hub.adminToken.tokenFile, 'utf8').trim();
      const api = async (method: string, path: string, body?: unknown) => {
        const headers: Record<string, string> = { authorization: `Bearer ${token}` };
        let payload: RequestInit['body'] | undefined;
        if (body instanceof Uint8Array) {
          headers['content-type'] = 'application/octet-stream';
          payload = body;
        } else if (body !== undefined) {
          headers['content-type'] = 'application/json';
          payload = JSON.stringify(body);
        }
        const res = await fetch(`${hub.httpUrl}${path}`, { method, headers, ...(payload ? { body: payload } : {}) });
        if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
        return res.json() as Promise<any>;
      };
      await api('POST', '/api/v1/models?name=bench&version=1.0.0', buildDemoModel({ seed: 1 }).bytes);
      const now = Date.now();
      hub.ctx.db.transaction(() => {
        for (let i = 0; i < DEVICES; i++) hub.ctx.devices.register(`dev-${String(i).padStart(5, '0')}`, { site: `plant-${i % 10}`, line: ['a', 'b', 'c'][i % 3]! }, now);
      })();

      let t0 = performance.now();
      const created = await api('POST', '/api/v1/rollouts', { model: 'bench@1.0.0', selector: 'site', stages: [{ size: '100%' }] });
      const createMs = performance.now() - t0;

      const idleTickMs: number[] = [];
      for (let i = 0; i < IDLE_TICKS; i++) {
        t0 = performance.now();
        await hub.ctx.rollouts.tick();
        idleTickMs.push(performance.now() - t0);
      }

      t0 = performance.now();
      for (const d of hub.ctx.rollouts.repo.devices(created.id)) {
        const desired = hub.ctx.deployments.desiredFor(d.deviceId)!;
        hub.ctx.bus.emit('device.reported', { deviceId: d.deviceId, deployment: { deploymentId: created.id, seq: desired.seq, phase: 'committed', digest: desired.digest } });
      }
      await new Promise((resolve) => setImmediate(resolve));
      await hub.ctx.rollouts.evaluate(created.id);
      const reportsMs = performance.now() - t0;

      t0 = performance.now();
      await hub.ctx.rollouts.tick();
      const completingTickMs = performance.now() - t0;

      t0 = performance.now();
      const status = await api('GET', `/api/v1/rollouts/${created.id}`);
      const statusViewMs = performance.now() - t0;
      return { devices: DEVICES, createMs, idleTickMs, reportsMs, completingTickMs, statusViewMs, state: status.state };
    } finally {
      await hub.close();
    }
  },
  report(r) {
    return {
      targets: [{ what: `Engine tick, ${r.devices.toLocaleString('en')} devices in an active rollout, nothing to do (median of ${IDLE_TICKS})`, measured: ms(median(r.idleTickMs)), target: 'reported', met: null }],
      details: [
        `### Rollout engine at ${r.devices.toLocaleString('en')} devices`,
        table(
          ['step', 'time'],
          [
            ['create a 100 % rollout: cohort, sign + store + publish every desired document', ms(r.createMs)],
            [`idle tick (median of ${IDLE_TICKS}; max)`, `${ms(median(r.idleTickMs))}; ${ms(Math.max(...r.idleTickMs))}`],
            [`${r.devices.toLocaleString('en')} devices report committed (row updates + coalesced evaluation)`, ms(r.reportsMs)],
            ['the next tick (the rollout completed in the evaluation the reports triggered)', ms(r.completingTickMs)],
            ['status view, GET /api/v1/rollouts/:id', ms(r.statusViewMs)],
          ],
        ),
        `The rollout ended ${r.state}.`,
      ].join('\n\n'),
    };
  },
};
