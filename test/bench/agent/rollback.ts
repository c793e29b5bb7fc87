/**
 * Rollback latency under load. A real `cairn-agent run` process serves the committed int8
 * reference model (`pdm-vibration@1.0.0`) on its local API while an open-loop generator sends
 * 500 requests/s and records every answer's status and serving digest. The hub then deploys the
 * faulty `pdm-vibration@1.0.1-slow` image: it passes its golden probes (same outputs, ~7 ms a
 * row instead of ~0.2 ms), serves as the trial candidate beside the hot standby, and the trial
 * fails it on latency against the standby, which swaps the standby back.
 *
 * The agent logs that decision ("trial failed, previous model serving again") in the same
 * synchronous step as the swap; its `time` (the agent's Date.now(), 1 ms resolution, the same
 * wall clock as the bench's) is the decision time. Everything else is seen from the client:
 *
 * - decision → first answer served by the previous model (the standby): the rollback as a new
 *   request experiences it;
 * - decision → last answer to a request sent before it: the rollback as a client already
 *   waiting experiences it (requests waiting on the candidate move to the standby at once);
 * - answers by the candidate after the decision (none should wait for it);
 * - failed requests (anything but 200) over the whole run;
 * - latency (due time → answer) before the deployment, while it downloads and probes, during the
 *   trial, and after the decision.
 */
import { join } from 'node:path';
import { closedLoop, inferBodies, OpenLoopLoad, type LoadRecord } from '../lib/load.js';
import { distribution, epochMs, ms, sleep, until, type Distribution } from '../lib/stats.js';
import { imageManifest } from '../lib/paths.js';
import { spawnAgent, startBenchHub } from '../lib/world.js';
import { table, type Benchmark } from '../lib/report.js';

const RATE_PER_SEC = 500;
/** Steady state recorded before the faulty deployment, and after the decision. */
const BEFORE_MS = 5000;
const AFTER_MS = 5000;
const TARGET_MS = 50;
const DEVICE = 'bench-rollback';
const GOOD = 'pdm-vibration-1.0.0-int8';
const SLOW = 'pdm-vibration-1.0.1-slow';

interface Window {
  name: string;
  /** Due time → answer (what a client on the schedule waits). */
  latency: Distribution;
  /** Send → answer (without the generator's own lateness). */
  sentLatency: Distribution;
  failed: number;
  byCandidate: number;
}

export interface RollbackResult {
  ratePerSec: number;
  requests: number;
  failed: number;
  /** Failure statuses seen (status → count; 0 = no HTTP answer). */
  failures: Record<string, number>;
  outcome: { phase: string; reason: string | null; message: string | null };
  /** Since the deployment was posted: the first request the candidate answered was due, the agent's `trial` event (stamped after the phase is persisted), the trial failed (agent clock). */
  firstCandidateDueMs: number;
  trialEventMs: number;
  decisionMs: number;
  /** Decision → first answer by the standby, → last answer to a request sent before the decision, and → last answer by the candidate. */
  firstStandbyAnswerMs: number;
  lastPendingAnswerMs: number;
  pendingAtDecision: number;
  lastCandidateAnswerMs: number;
  candidateAnswers: number;
  candidateAnswersAfterDecision: number;
  windows: Window[];
  /** How late the generator sent (sent − due), p99 over the run: its fidelity to the schedule. */
  sendLagP99Ms: number;
  /** Answers completed per 20 ms around the decision (bucket start relative to the decision): by whom, and the slowest. */
  timeline: Array<{ atMs: number; standby: number; candidate: number; maxLatencyMs: number }>;
}

export const rollback: Benchmark<RollbackResult> = {
  name: 'rollback',
  async run(workDir) {
    const hub = await startBenchHub(join(workDir, 'hub'));
    const goodDigest = imageManifest(GOOD).manifest.files[0]!.digest;
    const slowDigest = imageManifest(SLOW).manifest.files[0]!.digest;
    try {
      const good = await hub.publish(GOOD);
      const slow = await hub.publish(SLOW);
      // A 2 s trial commits the baseline sooner; the failing trial is ended by its latency
      // check, which the duration does not affect (minInferences and the ratio stay default).
      const agent = await spawnAgent({ hub, deviceId: DEVICE, stateDir: join(workDir, 'agent'), config: { health: { trial: { durationMs: 2000 } } } });
      try {
        const api = await agent.apiUrl();
        const bodies = inferBodies();
        const baseline = await hub.deploy(good, [DEVICE]);
        await until('the baseline to serve', async () => ((await (await fetch(`${api}/healthz`)).json()) as { active: { digest: string } | null }).active?.digest === goodDigest);
        await closedLoop(api, bodies, 200, 2); // warms the sockets and the session before the clock starts
        const load = new OpenLoopLoad(api, RATE_PER_SEC, bodies);
        load.start();
        const committed = await until('the baseline to end its trial', () => hub.ended(DEVICE, baseline));
        if (committed.phase !== 'committed') throw new Error(`the baseline did not commit: ${JSON.stringify(committed)}`);
        await sleep(BEFORE_MS);

        const deployAt = epochMs();
        const faulty = await hub.deploy(slow, [DEVICE]);
        const outcome = await until('the slow deployment to end', () => hub.ended(DEVICE, faulty), 120_000, 2);
        await sleep(AFTER_MS);
        const records = await load.stop();

        if (outcome.phase !== 'rolled_back') throw new Error(`the slow image was not rolled back: ${JSON.stringify(outcome)}`);
        const decisionLine = await agent.waitForLog('the trial failure', (l) => l.msg.startsWith('trial failed'), 10_000);
        const trialEvent = await until('the trial event at the hub', () => hub.hub.ctx.devices.events(DEVICE, 1000).find((e) => e.type === 'deployment' && e.deploymentId === faulty && e.phase === 'trial'), 10_000);
        return analyse(records, { deployAt, trialAt: trialEvent.ts, decisionAt: decisionLine.time, goodDigest, slowDigest, outcome });
      } finally {
        await agent.stop();
      }
    } finally {
      await hub.close();
    }
  },

  report(r) {
    return {
      targets: [
        {
          what: `Rollback: trial failure decision → first answer by the previous model (${r.ratePerSec} req/s open loop)`,
          measured: ms(r.firstStandbyAnswerMs),
          target: `≤ ${TARGET_MS} ms`,
          met: r.firstStandbyAnswerMs <= TARGET_MS,
        },
        {
          what: 'Rollback: decision → last answer to a request sent before it (as a waiting client sees it)',
          measured: `${ms(r.lastPendingAnswerMs)} (${r.pendingAtDecision} requests pending at the decision)`,
          target: `≤ ${TARGET_MS} ms`,
          met: r.lastPendingAnswerMs <= TARGET_MS,
        },
        {
          what: 'Rollback: answers by the faulty candidate after the decision',
          measured: `${r.candidateAnswersAfterDecision}`,
          target: '0',
          met: r.candidateAnswersAfterDecision === 0,
        },
        { what: 'Rollback: failed requests (not 200) over the run', measured: `${r.failed} of ${r.requests}`, target: '0', met: r.failed === 0 },
      ],
      details: `**Rollback under load.** ${r.requests} requests at ${r.ratePerSec}/s (open loop; generator send lag p99 ${ms(r.sendLagP99Ms)}). Outcome \`${r.outcome.phase}\` (\`${r.outcome.reason ?? '—'}\`): ${r.outcome.message ?? ''}. From the deployment's post: the first request the candidate answered was due at ${ms(r.firstCandidateDueMs)} (the agent's \`trial\` event at ${ms(r.trialEventMs)}), the trial failed at ${ms(r.decisionMs)}. The candidate answered ${r.candidateAnswers} requests, ${r.candidateAnswersAfterDecision} of them after the decision. Latency is due time → answer; the last column leaves out the generator's own lateness (send → answer).

${table(
  ['window (by due time)', 'requests', 'failed', 'answered by candidate', 'p50', 'p99', 'max', 'p99 send → answer'],
  r.windows.map((w) => [w.name, String(w.latency.count), String(w.failed), String(w.byCandidate), ms(w.latency.p50), ms(w.latency.p99), ms(w.latency.max), ms(w.sentLatency.p99)]),
)}`,
    };
  },
};

interface Marks {
  deployAt: number;
  trialAt: number;
  decisionAt: number;
  goodDigest: string;
  slowDigest: string;
  outcome: { phase: string; reason?: string; message?: string };
}

function analyse(records: LoadRecord[], m: Marks): RollbackResult {
  const latency = (r: LoadRecord): number => r.doneAt - r.dueAt;
  const failedOf = (rs: LoadRecord[]): LoadRecord[] => rs.filter((r) => r.status !== 200);
  const byCandidate = records.filter((r) => r.digest === m.slowDigest);
  const standbyAfter = records.filter((r) => r.digest === m.goodDigest && r.doneAt >= m.decisionAt);
  const window = (name: string, from: number, to: number): Window => {
    const rs = records.filter((r) => r.dueAt >= from && r.dueAt < to);
    return { name, latency: distribution(rs.map(latency)), sentLatency: distribution(rs.map((r) => r.doneAt - r.sentAt)), failed: failedOf(rs).length, byCandidate: rs.filter((r) => r.digest === m.slowDigest).length };
  };
  const failures: Record<string, number> = {};
  for (const r of failedOf(records)) failures[r.status] = (failures[r.status] ?? 0) + 1;
  const lastCandidate = Math.max(...byCandidate.map((r) => r.doneAt));
  const pending = records.filter((r) => r.sentAt < m.decisionAt && r.doneAt >= m.decisionAt);
  // Requests go to whichever model serves when the agent has read them, so the first one the
  // candidate answered marks (to within a request's reading time) when it began to serve.
  const candidateFrom = Math.min(...byCandidate.map((r) => r.dueAt));

  const timeline: RollbackResult['timeline'] = [];
  for (let at = Math.floor((candidateFrom - m.decisionAt) / 20) * 20 - 100; at <= lastCandidate - m.decisionAt + 100; at += 20) {
    const rs = records.filter((r) => r.doneAt - m.decisionAt >= at && r.doneAt - m.decisionAt < at + 20);
    timeline.push({ atMs: at, standby: rs.filter((r) => r.digest === m.goodDigest).length, candidate: rs.filter((r) => r.digest === m.slowDigest).length, maxLatencyMs: rs.length ? Math.max(...rs.map(latency)) : 0 });
  }

  return {
    ratePerSec: RATE_PER_SEC,
    requests: records.length,
    failed: failedOf(records).length,
    failures,
    outcome: { phase: m.outcome.phase, reason: m.outcome.reason ?? null, message: m.outcome.message ?? null },
    firstCandidateDueMs: candidateFrom - m.deployAt,
    trialEventMs: m.trialAt - m.deployAt,
    decisionMs: m.decisionAt - m.deployAt,
    firstStandbyAnswerMs: Math.min(...standbyAfter.map((r) => r.doneAt)) - m.decisionAt,
    lastPendingAnswerMs: pending.length ? Math.max(...pending.map((r) => r.doneAt)) - m.decisionAt : 0,
    pendingAtDecision: pending.length,
    lastCandidateAnswerMs: lastCandidate - m.decisionAt,
    candidateAnswers: byCandidate.length,
    candidateAnswersAfterDecision: byCandidate.filter((r) => r.doneAt > m.decisionAt).length,
    windows: [
      window(`before (${BEFORE_MS / 1000} s, baseline committed)`, m.deployAt - BEFORE_MS, m.deployAt),
      window('deployment posted → candidate serving (download, verification, load, probes)', m.deployAt, candidateFrom),
      window('candidate serving (trial) → trial failed', candidateFrom, m.decisionAt),
      window(`after the decision (${AFTER_MS / 1000} s)`, m.decisionAt, m.decisionAt + AFTER_MS),
    ],
    sendLagP99Ms: distribution(records.map((r) => r.sentAt - r.dueAt)).p99,
    timeline,
  };
}
