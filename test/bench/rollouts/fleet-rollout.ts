/**
 * A rollout to 1,000 simulated devices in one 100 % stage with the int8 reference image: how
 * long from `POST /api/v1/rollouts` until every device committed, and how many bytes of blob
 * frames the hub published through the broker per byte of bundle per device (chunk headers,
 * re-requests after timeouts and devices fetching twice all show up above 1.00).
 *
 * The devices run in a simulator process (`fleet-sim.js`: 1,000 real agents, one MQTT
 * connection each, one shared onnxruntime worker, a vibration window every 5 s) against a hub in
 * the bench process. They start without a model, so the rollout is their first deployment: each
 * downloads, verifies, runs its golden probes, then a trial. The default trial (30 s and 20
 * inferences) would take 100 s at one window per 5 s and measure the policy, not the rollout, so
 * the devices run a 2 s trial of one inference (`CAIRN_BENCH_HEALTH`); the time until every
 * device passed its probes (trial or committed) is reported too.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { ms, sleep, until } from '../lib/stats.js';
import { stopChild } from '../lib/proc.js';
import { startBenchHub } from '../lib/world.js';
import { table, type Benchmark } from '../lib/report.js';

const DEVICES = 1000;
const SIM_ENTRY = fileURLToPath(new URL('../agent/fleet-sim.js', import.meta.url));
const HEALTH = { trial: { durationMs: 2000, minInferences: 1 } };

export interface FleetRolloutResult {
  devices: number;
  bundleBytes: number;
  connectMs: number;
  /** POST → every device committed (or the last device ended, when some did not commit). */
  toAllEndedMs: number;
  /** POST → every device past its download, verification and probes (in trial or ended). */
  toAllProbedMs: number;
  committed: number;
  outcomes: Record<string, number>;
  blobBytes: number;
  blobChunks: number;
  state: string;
}

const counter = async (hub: Awaited<ReturnType<typeof startBenchHub>>, name: 'blobBytesServed' | 'blobChunksServed') => (await hub.hub.ctx.metrics[name].get()).values[0]?.value ?? 0;

export const fleetRollout: Benchmark<FleetRolloutResult> = {
  name: 'rollout',
  async run(dir) {
    const hub = await startBenchHub(join(dir, 'hub'));
    let sim: ChildProcess | undefined;
    try {
      const model = await hub.publish('pdm-vibration-1.0.0-int8');
      const [name, version] = model.split('@') as [string, string];
      const bundleBytes = hub.hub.ctx.registry.get(name, version)!.size;
      const started = performance.now();
      sim = spawn(process.execPath, [SIM_ENTRY, hub.hub.httpUrl, String(DEVICES), join(dir, 'devices'), '5000'], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, CAIRN_AGENT_ENROLLMENT_TOKEN: hub.enrollmentToken, CAIRN_BENCH_HEALTH: JSON.stringify(HEALTH) } });
      sim.stderr!.resume();
      await until(`${DEVICES} devices online`, () => hub.hub.ctx.devices.list().filter((d) => d.online).length >= DEVICES, 600_000, 250);
      const connectMs = performance.now() - started;
      await sleep(5000);

      const [bytes0, chunks0] = [await counter(hub, 'blobBytesServed'), await counter(hub, 'blobChunksServed')];
      const t0 = performance.now();
      const res = await fetch(`${hub.hub.httpUrl}/api/v1/rollouts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${readFileSync(hub.hub.adminToken.tokenFile, 'utf8').trim()}` },
        body: JSON.stringify({ model, selector: 'site', stages: [{ size: '100%', successThreshold: 100, failureThreshold: 100, timeout: '10m' }] }),
      });
      if (res.status !== 201) throw new Error(`rollout: ${res.status} ${await res.text()}`);
      const { id } = (await res.json()) as { id: string };
      const rows = () => hub.hub.ctx.rollouts.repo.devices(id);
      const probed = () => rows().filter((d) => d.state !== 'assigned' || d.phase === 'trial').length;
      await until('every device past its probes', () => probed() >= DEVICES, 600_000, 100);
      const toAllProbedMs = performance.now() - t0;
      await until('every device ended its deployment', () => rows().filter((d) => d.state !== 'assigned').length >= DEVICES, 600_000, 100);
      const toAllEndedMs = performance.now() - t0;
      const outcomes: Record<string, number> = {};
      for (const d of rows()) {
        const key = d.state === 'committed' ? 'committed' : `${d.state}: ${d.reason ?? '?'}`;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
      }
      return {
        devices: DEVICES,
        bundleBytes,
        connectMs,
        toAllEndedMs,
        toAllProbedMs,
        committed: outcomes.committed ?? 0,
        outcomes,
        blobBytes: (await counter(hub, 'blobBytesServed')) - bytes0,
        blobChunks: (await counter(hub, 'blobChunksServed')) - chunks0,
        state: hub.hub.ctx.rollouts.get(id).state,
      };
    } finally {
      if (sim && sim.exitCode === null) {
        const exited = new Promise((resolve) => sim!.once('exit', resolve));
        sim.kill('SIGTERM');
        const timer = setTimeout(() => sim!.kill('SIGKILL'), 60_000);
        await exited;
        clearTimeout(timer);
      }
      await hub.close();
    }
  },
  report(r) {
    const ratio = r.blobBytes / (r.bundleBytes * r.devices);
    const allCommitted = r.committed === r.devices;
    return {
      targets: [
        {
          what: `Rollout of the int8 image to ${r.devices.toLocaleString('en')} simulated devices, one 100 % stage: time to all committed`,
          measured: allCommitted ? ms(r.toAllEndedMs) : `${r.committed} of ${r.devices} committed; the last device ended after ${ms(r.toAllEndedMs)}`,
          target: '≤ 20 s',
          met: allCommitted && r.toAllEndedMs <= 20_000,
        },
        { what: 'Bytes of blob frames through the broker ÷ (bundle size × devices)', measured: ratio.toFixed(3), target: '≤ 1.05', met: ratio <= 1.05 },
      ],
      details: [
        `### Rollout to ${r.devices.toLocaleString('en')} devices`,
        table(
          ['measure', 'value'],
          [
            ['devices online after the simulator started', ms(r.connectMs)],
            ['rollout created → every device past download, verification and probes', ms(r.toAllProbedMs)],
            [`→ every device ended (trial: ${HEALTH.trial.durationMs / 1000} s, ${HEALTH.trial.minInferences} inference)`, ms(r.toAllEndedMs)],
            ['bundle', `${r.bundleBytes.toLocaleString('en')} bytes`],
            ['blob frames published', `${r.blobChunks.toLocaleString('en')} frames, ${r.blobBytes.toLocaleString('en')} bytes`],
            ['outcomes', Object.entries(r.outcomes).map(([k, v]) => `${k} ${v}`).join('; ')],
            ['rollout state', r.state],
          ],
        ),
      ].join('\n\n'),
    };
  },
};
