/**
 * The senders of the ingest benchmark, run as a child process so that the hub under test has
 * the bench process to itself: one mqtt.js connection per enrolled device, publishing telemetry
 * summaries at QoS 1 on an open-loop schedule (message i of the whole run is due at
 * start + i / rate, whatever the acknowledgements do), round-robin over the devices.
 *
 * Lag per message: from its due time to its PUBACK. The hub sends the PUBACK only after the
 * batch holding the summary committed, so this is an upper bound of the ingest lag (receipt →
 * commit) that includes the sender's own queueing and both directions of the socket.
 *
 * Input: a JSON `SendersInput` on stdin. Output: one JSON `SendersResult` line on stdout.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { deviceTopic } from '@cairn/shared';
import { epochMs, sleep } from '../lib/stats.js';
import { sampleSummary } from './telemetry-sample.js';

export interface SendersInput {
  mqttUrl: string;
  devices: Array<{ id: string; username: string; password: string }>;
  ratePerSec: number;
  durationMs: number;
}

export interface SendersResult {
  sent: number;
  acknowledged: number;
  failed: number;
  /** Lag (due → PUBACK) in ms of every acknowledged message, in send order. */
  lagsMs: number[];
  /** Epoch ms of the first due time and of the last PUBACK. */
  startedAt: number;
  lastAckAt: number;
  payloadBytes: number;
  /** When the last message was handed to mqtt.js (behind its due time when this process could not keep the schedule). */
  lastSentAt: number;
  /** CPU seconds this process used from the first due time to the last PUBACK. */
  cpuSeconds: number;
}

async function main(): Promise<void> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const input = JSON.parse(Buffer.concat(chunks).toString('utf8')) as SendersInput;

  const clients: MqttClient[] = await Promise.all(
    input.devices.map(
      (d) =>
        new Promise<MqttClient>((resolve, reject) => {
          const client = mqtt.connect(input.mqttUrl, { clientId: d.id, username: d.username, password: d.password, protocolVersion: 4, reconnectPeriod: 0, connectTimeout: 60_000 });
          client.once('connect', () => resolve(client));
          client.once('error', reject);
        }),
    ),
  );
  const topics = input.devices.map((d) => deviceTopic(d.id, 'telemetry'));
  const seqs = input.devices.map(() => 0);
  const total = Math.round((input.ratePerSec * input.durationMs) / 1000);
  const lagsMs = new Float64Array(total).fill(Number.NaN);
  let sent = 0;
  let acknowledged = 0;
  let failed = 0;
  let lastAckAt = 0;
  let payloadBytes = 0;
  const startedAt = epochMs() + 100;
  const cpuBefore = process.cpuUsage();
  const intervalMs = 1000 / input.ratePerSec;

  while (sent < total) {
    const now = epochMs();
    const due = Math.min(total, Math.floor((now - startedAt) / intervalMs) + 1);
    for (; sent < due; sent++) {
      const i = sent;
      const d = i % clients.length;
      const dueAt = startedAt + i * intervalMs;
      const payload = JSON.stringify(sampleSummary(seqs[d]!++, Math.round(dueAt)));
      payloadBytes += payload.length;
      clients[d]!.publish(topics[d]!, payload, { qos: 1 }, (err) => {
        if (err) {
          failed++;
          return;
        }
        lastAckAt = epochMs();
        lagsMs[i] = lastAckAt - dueAt;
        acknowledged++;
      });
    }
    await sleep(Math.max(1, Math.min(10, startedAt + sent * intervalMs - epochMs())));
  }
  const lastSentAt = epochMs();
  const deadline = Date.now() + 120_000;
  while (acknowledged + failed < total && Date.now() < deadline) await sleep(50);
  const cpu = process.cpuUsage(cpuBefore);
  await Promise.all(clients.map((c) => c.endAsync()));
  const result: SendersResult = { sent, acknowledged, failed, lagsMs: Array.from(lagsMs).filter((v) => !Number.isNaN(v)), startedAt, lastAckAt, payloadBytes, lastSentAt, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((err) => {
  process.stderr.write(`${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
