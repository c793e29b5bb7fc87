/**
 * The foundation benchmarks (`npm run bench -- foundation`):
 *
 * 1. Chunked MQTT transfer of a 4 MB model blob from the hub to one agent (the agent's
 *    `downloading` → `verifying` events), against a plain loopback TCP copy of the same bytes.
 * 2. Time from `POST /api/v1/deployments` (what `cairn deploy` calls) to the agent serving the
 *    new model (its local API answers with the new version), for a small and a 4 MB model.
 * 3. The reference images' int8 models against their fp32 parents on the held-out set:
 *    accuracy, size and single-row latency ratios, measured by the quantization gate.
 */
import { readFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { join } from 'node:path';
import { pino } from 'pino';
import { createAgent, parseConfig, createWorkerRuntime, type Agent } from '@cairn/agent';
import { loadHubConfig, startHub, type RunningHub } from '@cairn/hub';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';
import { writeMlpOnnx } from '@cairn/hub/training/onnx-writer.js';
import { gaussianArray, mulberry32, generateDataset } from '@cairn/shared';
import { evaluateQuantization } from '@cairn/hub/training/quantization-gate.js';
import * as ort from 'onnxruntime-node';
import { PDM_VERSIONS } from '@cairn/hub/training/recipes/pdm-vibration.js';
import { median, until } from './lib/stats.js';
import { imageModelPath } from './lib/paths.js';
import type { Benchmark } from './lib/report.js';

const ROUNDS = 7;
const silent = pino({ level: 'silent' });

function bigModel(seed: number): Uint8Array {
  // 1024×1024 float32 weights ≈ 4 MiB: a realistic size for a quantized edge model.
  const rng = mulberry32(seed);
  return writeMlpOnnx({
    inputName: 'features',
    outputName: 'probabilities',
    inputSize: 1024,
    layers: [
      { inSize: 1024, outSize: 1024, weights: gaussianArray(rng, 1024 * 1024, 0.03), bias: new Float32Array(1024), activation: 'relu' },
      { inSize: 1024, outSize: 4, weights: gaussianArray(rng, 1024 * 4, 0.03), bias: new Float32Array(4), activation: 'none' },
    ],
    softmax: true,
  });
}

async function tcpCopyMs(bytes: Uint8Array): Promise<number> {
  const server = createServer((socket) => socket.end(bytes));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  const start = performance.now();
  await new Promise<void>((resolve, reject) => {
    let received = 0;
    const socket = connect(port, '127.0.0.1');
    socket.on('data', (d) => (received += d.length));
    socket.on('end', () => (received === bytes.length ? resolve() : reject(new Error(`got ${received} bytes`))));
    socket.on('error', reject);
  });
  const elapsed = performance.now() - start;
  await new Promise((r) => server.close(r));
  return elapsed;
}

async function api(hub: RunningHub, token: string, method: string, path: string, body?: unknown): Promise<any> {
  const raw = body instanceof Uint8Array;
  const response = await fetch(hub.httpUrl + path, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { 'content-type': raw ? 'application/octet-stream' : 'application/json' }) },
    ...(body === undefined ? {} : { body: raw ? body : JSON.stringify(body) }),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return response.json();
}

const fmt = (ms: number) => `${ms.toFixed(1)} ms`;

interface QuantizationRow {
  version: string;
  parentAcc: number;
  childAcc: number;
  sizeRatio: number;
  latencyRatio: number;
  parentMs: number;
  childMs: number;
  kernelParentMs: number;
  kernelChildMs: number;
}

export interface FoundationResult {
  transfer: { mqttMs: number; tcpMs: number; ratio: number }[];
  deploySmallMs: number[];
  deployBigMs: number[];
  bigBytes: number;
  quantization: QuantizationRow[];
  slowRatio: { normal: number; slow: number; ratio: number };
}

export const foundation: Benchmark<FoundationResult> = {
  name: 'foundation',
  async run(dir) {
    const { transfer, deploySmallMs, deployBigMs, bigBytes } = await transferAndDeploy(dir);
    return { transfer, deploySmallMs, deployBigMs, bigBytes, quantization: await quantizationRows(), slowRatio: await slowRatio() };
  },
  report(results) {
    const { quantization, slowRatio } = results;
    return {
      targets: [],
      details: `${ROUNDS} rounds each, medians.

| benchmark | median | min | max |
|---|---|---|---|
| MQTT chunked transfer, ${(results.bigBytes / 2 ** 20).toFixed(2)} MiB blob, hub → agent (download phase) | ${fmt(median(results.transfer.map((r) => r.mqttMs)))} | ${fmt(Math.min(...results.transfer.map((r) => r.mqttMs)))} | ${fmt(Math.max(...results.transfer.map((r) => r.mqttMs)))} |
| plain loopback TCP copy of the same bytes | ${fmt(median(results.transfer.map((r) => r.tcpMs)))} | ${fmt(Math.min(...results.transfer.map((r) => r.tcpMs)))} | ${fmt(Math.max(...results.transfer.map((r) => r.tcpMs)))} |
| **ratio MQTT / TCP** (same round) | **${median(results.transfer.map((r) => r.ratio)).toFixed(1)}×** | ${Math.min(...results.transfer.map((r) => r.ratio)).toFixed(1)}× | ${Math.max(...results.transfer.map((r) => r.ratio)).toFixed(1)}× |
| deploy → serving, demo model (${(buildDemoModel().bytes.length / 1024).toFixed(1)} KiB) | ${fmt(median(results.deploySmallMs))} | ${fmt(Math.min(...results.deploySmallMs))} | ${fmt(Math.max(...results.deploySmallMs))} |
| deploy → serving, ${(results.bigBytes / 2 ** 20).toFixed(2)} MiB model | ${fmt(median(results.deployBigMs))} | ${fmt(Math.min(...results.deployBigMs))} | ${fmt(Math.max(...results.deployBigMs))} |

Reference images, int8 against the fp32 parent on the held-out set (1,000 single-row inferences each through the worker runtime, medians):

| model | fp32 accuracy | int8 accuracy | size int8/fp32 | via worker fp32 / int8 | ratio | session.run fp32 / int8 | ratio |
|---|---|---|---|---|---|---|---|
${quantization.map((q) => `| pdm-vibration ${q.version} | ${q.parentAcc.toFixed(2)} % | ${q.childAcc.toFixed(2)} % | ${q.sizeRatio.toFixed(3)} | ${q.parentMs.toFixed(3)} / ${q.childMs.toFixed(3)} ms | ${q.latencyRatio.toFixed(2)} | ${(q.kernelParentMs * 1000).toFixed(1)} / ${(q.kernelChildMs * 1000).toFixed(1)} µs | ${(q.kernelChildMs / q.kernelParentMs).toFixed(2)} |`).join('\n')}

Faulty image \`pdm-vibration@1.0.1-slow\` against the default \`pdm-vibration@1.0.0\` (int8), single-row inference through the agent's worker, median of 200: ${slowRatio.normal.toFixed(3)} ms → ${slowRatio.slow.toFixed(3)} ms, **×${slowRatio.ratio.toFixed(1)}** (target ≥ 20×).`,
    };
  },
};

/** Benchmarks 1 and 2, against one in-process hub and agent. */
async function transferAndDeploy(dir: string): Promise<Pick<FoundationResult, 'transfer' | 'deploySmallMs' | 'deployBigMs' | 'bigBytes'>> {
  const hub = await startHub(loadHubConfig({ env: {}, overrides: { dataDir: join(dir, 'hub'), logLevel: 'silent', http: { port: 0 }, mqtt: { port: 0 } } }));
  const token = readFileSync(hub.adminToken.tokenFile, 'utf8').trim();
  const trust = (await (await fetch(`${hub.httpUrl}/api/v1/trust`)).json()) as { rootPublicKey: string; mqttUrl: string };
  const enrollToken = ((await (await fetch(`${hub.httpUrl}/api/v1/enrollment-tokens`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{}' })).json()) as { token: string }).token;
  const agent: Agent = createAgent(
    parseConfig({ deviceId: 'bench-1', stateDir: join(dir, 'agent'), mqttUrl: trust.mqttUrl, rootPublicKey: trust.rootPublicKey, labels: {}, api: { host: '127.0.0.1', port: 0 }, telemetryIntervalMs: 60_000, source: { kind: 'none' }, enrollment: { hubUrl: hub.httpUrl, token: enrollToken } }),
    { logger: silent },
  );
  await agent.start();
  await until('agent online', () => hub.ctx.devices.get('bench-1')?.online === true, 120_000, 2);

  const results = { transfer: [] as { mqttMs: number; tcpMs: number; ratio: number }[], deploySmallMs: [] as number[], deployBigMs: [] as number[], bigBytes: 0 };
  const serving = async (version: string) => {
    const response = await fetch(`http://127.0.0.1:${agent.status.api!.port}/healthz`);
    const body = (await response.json()) as { active?: { version: string } | null };
    return body.active?.version === version;
  };

  for (let round = 0; round < ROUNDS; round++) {
    for (const kind of ['small', 'big'] as const) {
      const version = `${kind === 'small' ? 1 : 2}.${round}.0`;
      const bytes = kind === 'small' ? buildDemoModel({ seed: 100 + round }).bytes : bigModel(round);
      if (kind === 'big') results.bigBytes = bytes.length;
      await api(hub, token, 'POST', `/api/v1/models?name=bench-${kind}&version=${version}`, bytes);
      const start = performance.now();
      await api(hub, token, 'POST', '/api/v1/deployments', { model: `bench-${kind}@${version}`, deviceIds: ['bench-1'] });
      await until(`serving ${kind} ${version}`, () => serving(version), 120_000, 2);
      const elapsed = performance.now() - start;
      (kind === 'small' ? results.deploySmallMs : results.deployBigMs).push(elapsed);
      if (kind === 'big') {
        const events = agent.status.recentEvents.filter((e) => e.type === 'deployment' && e.digest && e.seq === agent.status.lastDesiredSeq);
        const began = events.find((e) => e.phase === 'downloading')?.ts;
        const ended = events.find((e) => e.phase === 'verifying')?.ts;
        if (began === undefined || ended === undefined) throw new Error('missing download events');
        const mqttMs = Math.max(1, ended - began);
        const tcpMs = await tcpCopyMs(bytes);
        results.transfer.push({ mqttMs, tcpMs, ratio: mqttMs / tcpMs });
      }
    }
  }
  await agent.stop();
  await hub.close();
  return results;
}

/** Benchmark 3: the quantization gate's figures, and the kernels alone. */
async function quantizationRows(): Promise<QuantizationRow[]> {
  const quantization: QuantizationRow[] = [];
  for (const version of ['1.0.0', '1.1.0'] as const) {
    const recipe = PDM_VERSIONS[version];
    const heldOut = generateDataset({ seed: recipe.seed + 7_919, machines: recipe.machines, windowsPerClass: 200 });
    const gate = await evaluateQuantization({
      parent: readFileSync(imageModelPath(`pdm-vibration-${version}-fp32`)),
      child: readFileSync(imageModelPath(`pdm-vibration-${version}-int8`)),
      calibration: { inputs: heldOut.features, count: heldOut.count, labels: heldOut.labels },
      latencyRuns: 1000,
    });
    // The kernel alone, without the worker round trip (the bench may block its own loop).
    const direct = async (file: string) => {
      const session = await ort.InferenceSession.create(file, { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
      const feeds = { features: new ort.Tensor('float32', heldOut.features.slice(0, heldOut.featureCount), [1, heldOut.featureCount]) };
      const times: number[] = [];
      for (let i = 0; i < 3000; i++) {
        const t0 = performance.now();
        await session.run(feeds);
        if (i >= 500) times.push(performance.now() - t0);
      }
      await session.release();
      return median(times);
    };
    const kernelParentMs = await direct(imageModelPath(`pdm-vibration-${version}-fp32`));
    const kernelChildMs = await direct(imageModelPath(`pdm-vibration-${version}-int8`));
    quantization.push({ kernelParentMs, kernelChildMs, version, parentAcc: gate.accuracy!.parent, childAcc: gate.accuracy!.child, sizeRatio: gate.size.ratio, latencyRatio: gate.latency.ratio, parentMs: gate.latency.parentMs, childMs: gate.latency.childMs });
  }
  return quantization;
}

/** The slow faulty image against the default image, as the agent sees it (through its worker). */
async function slowRatio(): Promise<FoundationResult['slowRatio']> {
  const runtime = createWorkerRuntime();
  try {
    const row = generateDataset({ seed: 1, machines: ['pump-1800'], windowsPerClass: 1 }).features.slice(0, 19);
    const median200 = async (id: string) => {
      const session = await runtime.load(id.padEnd(64, '0').replace(/[^0-9a-f]/g, 'a').slice(0, 64), imageModelPath(id));
      const times: number[] = [];
      for (let i = 0; i < 220; i++) {
        const t0 = performance.now();
        await session.infer({ features: { dims: [1, 19], data: row.slice() } });
        if (i >= 20) times.push(performance.now() - t0);
      }
      return median(times);
    };
    const normal = await median200('pdm-vibration-1.0.0-int8');
    const slow = await median200('pdm-vibration-1.0.1-slow');
    return { normal, slow, ratio: slow / normal };
  } finally {
    await runtime.close();
  }
}
