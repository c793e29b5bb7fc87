/**
 * `cairn rollout …`: create, list, watch and steer staged rollouts. `status --watch` redraws one
 * progress bar per stage (committed devices against the stage's target) until the rollout
 * completes or stops; with `--json` it prints one status object per line instead. A watched
 * rollout that stops (paused, aborted, rolled back) exits with status 3, so scripts notice.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import type { CliKit } from './operator-commands.js';
import { table } from './output.js';
import type { HubClient } from './hub-client.js';

type Common = { hub?: string; token?: string; data?: string; json?: boolean };

/** What the CLI reads of `GET /api/v1/rollouts/:id` (hub/src/modules/rollouts/rollout-view.ts). */
interface RolloutInfo {
  id: string;
  model: string;
  state: string;
  target: { selector?: string; deviceIds?: string[] };
  cohort: number;
  stage: number;
  stages: { index: number; size: string | number; target: number; status: string; assigned: number; committed: number; bakeMs: number }[];
  devices: Record<string, number>;
  current: { failureShare: number; successShare: number; healthySince: string | null; bakeEndsAt: string | null; gates: { gate: string; status: string; value: number | null; threshold: number }[] | null };
  waiting: { reason: string; opensAt?: number; devices?: number; canary?: number; perMinute?: number; startAt?: number } | null;
  stopReason: { kind: string; cause?: string; actor?: string; stage?: number; detail?: unknown } | null;
  createdAt: string;
  updatedAt: string;
}

const FINISHED = new Set(['completed', 'aborted', 'rolled_back']);
const STOPPED = new Set(['paused', 'aborted', 'rolled_back']);

const percent = (text: string): number => {
  const match = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim());
  if (!match || Number(match[1]) > 100) throw new InvalidArgumentError('a share from 0 to 100, e.g. 5%');
  return Number(match[1]);
};

const stagesOption = (text: string): (string | number)[] =>
  text.split(',').map((s) => {
    const t = s.trim();
    if (/^\d+(\.\d+)?%$/.test(t)) return t;
    if (/^\d+$/.test(t)) return Number(t);
    throw new InvalidArgumentError(`${JSON.stringify(t)}: each stage is a share (10%) or a device count (5)`);
  });

// "CRON/DURATION", e.g. `0 2 * * *` + `/2h`: a five-field cron expression, a slash, a duration.
const windowOption = (text: string): { cron: string; duration: string } => {
  const at = text.lastIndexOf('/');
  if (at <= 0) throw new InvalidArgumentError('use "CRON/DURATION", e.g. "0 2 * * */2h"');
  return { cron: text.slice(0, at).trim(), duration: text.slice(at + 1).trim() };
};

const gateOption = (text: string, previous: Record<string, number> = {}): Record<string, number> => {
  const match = /^(driftPsi|latencyP95Ratio|errorRateDelta|alertRateDelta|minSamples)=(\d+(?:\.\d+)?)$/.exec(text.trim());
  if (!match) throw new InvalidArgumentError('use NAME=VALUE with NAME one of driftPsi, latencyP95Ratio, errorRateDelta, alertRateDelta, minSamples');
  return { ...previous, [match[1]!]: Number(match[2]) };
};

export function describeWaiting(r: RolloutInfo): string {
  const w = r.waiting;
  if (r.stopReason) {
    const s = r.stopReason;
    return s.kind === 'breach' ? `stopped at stage ${(s.stage ?? 0) + 1}: ${s.cause} ${JSON.stringify(s.detail)}` : `stopped by ${s.actor ?? 'an operator'}`;
  }
  if (!w) return '';
  switch (w.reason) {
    case 'outside_window':
      return `waiting for the maintenance window (opens ${new Date(w.opensAt!).toISOString()})`;
    case 'approval_required':
      return `waiting for approval: ${w.devices} devices > canary ${w.canary} (cairn rollout approve ${r.id})`;
    case 'rate_limited':
      return `rate limited to ${w.perMinute} devices/min`;
    case 'scheduled':
      return `starts at ${new Date(w.startAt!).toISOString()}`;
    default:
      return w.reason;
  }
}

export function summary(r: RolloutInfo): string {
  const head = `${r.id}  ${r.model}  ${r.state}  stage ${Math.min(r.stage + 1, r.stages.length)}/${r.stages.length}  cohort ${r.cohort}  failed ${r.current.failureShare}%`;
  const gates = (r.current.gates ?? []).map((g) => `${g.gate}=${g.value ?? '?'} (≤ ${g.threshold}: ${g.status})`).join('  ');
  return [head, describeWaiting(r), gates].filter(Boolean).join('\n');
}

async function watch(api: HubClient, id: string, json: boolean): Promise<RolloutInfo> {
  const fetchStatus = () => api.request<RolloutInfo>('GET', `/api/v1/rollouts/${encodeURIComponent(id)}`);
  let r = await fetchStatus();
  if (json) {
    let last = '';
    for (;;) {
      const line = JSON.stringify(r);
      if (line !== last) console.log(line);
      last = line;
      if (FINISHED.has(r.state) || r.state === 'paused') return r;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      r = await fetchStatus();
    }
  }
  const bars = new cliProgress.MultiBar(
    { format: ' {name} [{bar}] {value}/{total} committed  {note}', hideCursor: true, clearOnComplete: false, stopOnComplete: false, barsize: 30, forceRedraw: true },
    cliProgress.Presets.shades_classic,
  );
  const header = bars.create(1, 0, { name: '', note: '' }, { format: ' {note}' });
  const stageBars = r.stages.map((s) => bars.create(Math.max(s.target, 1), 0, { name: `stage ${s.index + 1} (${String(s.size).padStart(4)})`, note: '' }));
  try {
    for (;;) {
      header.update(0, { note: `${r.id} ${r.model}: ${r.state}${describeWaiting(r) ? ` — ${describeWaiting(r)}` : ''}` });
      for (const s of r.stages) {
        const committed = r.stages.filter((x) => x.index <= s.index).reduce((n, x) => n + x.committed, 0);
        stageBars[s.index]!.setTotal(Math.max(s.target, 1));
        stageBars[s.index]!.update(Math.min(committed, Math.max(s.target, 1)), { note: s.status === 'active' ? (r.current.bakeEndsAt ? `baking until ${r.current.bakeEndsAt}` : 'active') : s.status });
      }
      if (FINISHED.has(r.state) || r.state === 'paused') return r;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      r = await fetchStatus();
    }
  } finally {
    bars.stop();
  }
}

export function registerRolloutCommands(program: Command, { clientOptions, client, print }: CliKit): void {
  const rollout = program.command('rollout').description('staged rollouts of a model version to a label-selected cohort');

  clientOptions(
    rollout
      .command('create')
      .description('create and start a staged rollout')
      .requiredOption('--model <ref>', 'name@version')
      .addOption(new Option('--selector <selector>', 'cohort: label selector, e.g. "site=plant-3,hw in (rpi4,jetson)"').conflicts('device'))
      .addOption(new Option('--device <id...>', 'cohort: device ids'))
      .option('--stages <list>', 'cumulative stages: shares or counts', stagesOption, ['1%', '10%', '50%', '100%'])
      .option('--bake <duration>', 'healthy time before each next stage (not after the last)', '10m')
      .option('--timeout <duration>', 'a device without a final report by then counts as timed out', '30m')
      .option('--min-success <share>', 'committed share a stage needs', percent)
      .option('--max-failure <share>', 'failed share that trips the breach policy', percent)
      .option('--gate <name=value>', 'quality gate on every stage (repeatable): driftPsi, latencyP95Ratio, errorRateDelta, alertRateDelta, minSamples', gateOption)
      .addOption(new Option('--on-breach <policy>', 'pause, or pause and roll the updated devices back').choices(['pause', 'rollback']).default('pause'))
      .option('--rate <n>', 'devices told to change per minute at most', (v) => Number.parseInt(v, 10))
      .option('--start-at <time>', 'start at this ISO 8601 time')
      .option('--window <cron/duration>', 'maintenance window, e.g. "0 2 * * */2h"', windowOption)
      .option('--tz <zone>', 'time zone of the window (default UTC)')
      .option('--no-start', 'create only; start it with `cairn rollout start`')
      .option('--watch', 'watch its progress'),
  ).action(async (o: Common & Record<string, any>) => {
    if (!o.device && o.selector === undefined) throw new InvalidArgumentError('give --selector S or --device ID…');
    const stages = (o.stages as (string | number)[]).map((size, i, all) => ({
      size,
      ...(i < all.length - 1 ? { bake: o.bake } : {}),
      timeout: o.timeout,
      ...(o.minSuccess !== undefined ? { successThreshold: o.minSuccess } : {}),
      ...(o.maxFailure !== undefined ? { failureThreshold: o.maxFailure } : {}),
      ...(o.gate ? { gates: o.gate } : {}),
    }));
    const body = {
      model: o.model,
      ...(o.device ? { deviceIds: o.device } : { selector: o.selector }),
      stages,
      breachPolicy: o.onBreach,
      ...(o.rate ? { rateLimit: { devicesPerMinute: o.rate } } : {}),
      ...(o.startAt ? { startAt: o.startAt } : {}),
      ...(o.window ? { window: { ...o.window, ...(o.tz ? { timezone: o.tz } : {}) } } : {}),
      start: o.start !== false,
    };
    const api = client(o);
    const r = await api.request<RolloutInfo>('POST', '/api/v1/rollouts', body);
    print(o, r, () => `rollout ${r.id}: ${r.model} → cohort of ${r.cohort} in ${r.stages.length} stages (${r.stages.map((s) => `${s.size}=${s.target}`).join(', ')}), ${r.state}`);
    if (o.watch) await finishWatch(api, r.id, !!o.json);
  });

  clientOptions(
    rollout
      .command('list')
      .description('rollouts, newest first')
      .option('--state <state...>', 'only these states')
      .option('--direct', 'include direct deployments (cairn deploy)'),
  ).action(async (o: Common & { state?: string[]; direct?: boolean }) => {
    const query = new URLSearchParams();
    for (const s of o.state ?? []) query.append('state', s);
    if (o.direct) query.set('direct', 'true');
    const { rollouts } = await client(o).request<{ rollouts: RolloutInfo[] }>('GET', `/api/v1/rollouts?${query}`);
    print(o, rollouts, () =>
      table(
        rollouts.map((r) => ({ id: r.id, model: r.model, state: r.state, stage: `${Math.min(r.stage + 1, r.stages.length)}/${r.stages.length}`, cohort: r.cohort, devices: r.devices, created: r.createdAt })),
        ['id', 'model', 'state', 'stage', 'cohort', 'devices', 'created'],
      ),
    );
  });

  clientOptions(rollout.command('status <id>').description('progress per stage, gates, why it waits or stopped').option('--watch', 'follow it live until it completes or stops')).action(
    async (id: string, o: Common & { watch?: boolean }) => {
      const api = client(o);
      if (o.watch) return finishWatch(api, id, !!o.json);
      const r = await api.request<RolloutInfo>('GET', `/api/v1/rollouts/${encodeURIComponent(id)}`);
      print(o, r, () =>
        [summary(r), table(r.stages.map((s) => ({ stage: s.index + 1, size: s.size, target: s.target, assigned: s.assigned, committed: s.committed, status: s.status })), ['stage', 'size', 'target', 'assigned', 'committed', 'status'])].join('\n'),
      );
    },
  );

  const actions: [string, string][] = [
    ['start', 'start a rollout created with --no-start'],
    ['pause', 'stop telling devices to change (devices already told go on)'],
    ['resume', 'resume a paused rollout (the stage bakes again)'],
    ['abort', 'end the rollout; devices stay where they are'],
    ['rollback', 'end the rollout and return its updated devices to the model each had before'],
    ['approve', "approve the rollout's model version (four eyes: not the one who pushed it)"],
  ];
  for (const [action, description] of actions) {
    clientOptions(rollout.command(`${action} <id>`).description(description)).action(async (id: string, o: Common) => {
      const r = await client(o).request<RolloutInfo>('POST', `/api/v1/rollouts/${encodeURIComponent(id)}/${action}`);
      print(o, r, () => summary(r));
    });
  }
}

async function finishWatch(api: HubClient, id: string, json: boolean): Promise<void> {
  const r = await watch(api, id, json);
  if (!json) console.log(summary(r));
  if (STOPPED.has(r.state)) process.exitCode = 3;
}
