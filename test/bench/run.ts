/**
 * `npm run bench [-- <name>...]`: Cairn's benchmarks. Each result is a ratio or a distribution
 * measured in one run on this machine, never a pass/fail timing. Prints a Markdown section per
 * group for BENCHMARKS.md and writes the raw numbers to test-artifacts/bench.json.
 *
 * Names select what runs: a group (`foundation`, `agent`, `rollouts`, `monitoring`, `security`) or
 * one benchmark of a group (`rollback`, `memory`, `swaps`, `pipeline`, `fleet`, `engine`,
 * `rollout`, `drift`, `workorders`, `alerts`, `stream`, `ingest`, `rollup-query`, `storage`, `desired`, `verify`); no name runs everything.
 *
 * Other work may share the machine (engineers run tests on it at the same time): every
 * benchmark records how busy the whole machine was while it ran, and the section says so.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { foundation } from './foundation.js';
import { rollback } from './agent/rollback.js';
import { memory } from './agent/memory.js';
import { swaps } from './agent/swaps.js';
import { pipeline } from './agent/pipeline.js';
import { fleet } from './agent/fleet.js';
import { engine } from './rollouts/engine.js';
import { fleetRollout } from './rollouts/fleet-rollout.js';
import { drift } from './monitoring/drift.js';
import { workOrders } from './monitoring/work-orders.js';
import { alertRules } from './monitoring/alert-rules.js';
import { streamBench } from './monitoring/stream.js';
import { ingest, rollupQuery, storage } from './monitoring/telemetry-store.js';
import { desiredFanout } from './security/desired-fanout.js';
import { bundleVerify } from './security/bundle-verify.js';
import { runBenchmark, table, type Benchmark, type BenchReport } from './lib/report.js';
import { watchMachine, type MachineLoad } from './lib/proc.js';

interface Group {
  name: string;
  title: string;
  benchmarks: Array<Benchmark<unknown>>;
}

const GROUPS: Group[] = [
  { name: 'foundation', title: 'Foundation benchmarks', benchmarks: [foundation] },
  { name: 'agent', title: 'Agent benchmarks', benchmarks: [rollback, memory, swaps, pipeline, fleet] },
  { name: 'rollouts', title: 'Rollout benchmarks', benchmarks: [engine, fleetRollout] },
  { name: 'monitoring', title: 'Monitoring benchmarks', benchmarks: [drift, workOrders, alertRules, streamBench, ingest, rollupQuery, storage] },
  { name: 'security', title: 'Security benchmarks', benchmarks: [desiredFanout, bundleVerify] },
];

function selected(names: string[]): Group[] {
  const known = [...new Set(GROUPS.flatMap((g) => [g.name, ...g.benchmarks.map((b) => b.name)]))];
  const unknown = names.filter((n) => !known.includes(n));
  if (unknown.length > 0) throw new Error(`unknown benchmark ${unknown.join(', ')}; choose from ${known.join(', ')}`);
  if (names.length === 0) return GROUPS;
  return GROUPS.map((g) => ({ ...g, benchmarks: names.includes(g.name) ? g.benchmarks : g.benchmarks.filter((b) => names.includes(b.name)) })).filter((g) => g.benchmarks.length > 0);
}

const loadNote = (load: MachineLoad): string => `${(load.busy * 100).toFixed(0)} % of all cores busy over ${load.seconds.toFixed(0)} s (this run included), load average ${load.loadavg1.toFixed(2)}`;

function section(group: Group, results: Array<{ name: string; report: BenchReport; load: MachineLoad }>): string {
  const date = new Date().toISOString().slice(0, 10);
  const machine = `Machine: ${cpus().length} × ${cpus()[0]?.model ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.version}, ${process.platform}/${process.arch}.`;
  const targets = results.flatMap((r) => r.report.targets);
  const parts = [`## ${group.title} — ${date}`, machine];
  if (group.name !== 'foundation') {
    parts.push(`Other engineers' tests may share the machine. While each benchmark ran: ${results.map((r) => `${r.name} ${loadNote(r.load)}`).join('; ')}.`);
  }
  if (targets.length > 0) parts.push(table(['target', 'measured', 'target', 'result'], targets.map((t) => [t.what, t.measured, t.target, t.met === null ? '—' : t.met ? 'met' : '**not met**'])));
  parts.push(...results.map((r) => r.report.details));
  return parts.join('\n\n');
}

async function main(): Promise<void> {
  const groups = selected(process.argv.slice(2));
  const raw: Record<string, Record<string, unknown>> = {};
  const sections: string[] = [];
  for (const group of groups) {
    const results: Array<{ name: string; report: BenchReport; load: MachineLoad }> = [];
    raw[group.name] = {};
    for (const bench of group.benchmarks) {
      const dir = mkdtempSync(join(tmpdir(), `cairn-bench-${bench.name}-`));
      process.stderr.write(`bench: ${bench.name}…\n`);
      const watch = watchMachine();
      try {
        const { raw: result, report } = await runBenchmark(bench, dir);
        const load = watch.end();
        raw[group.name]![bench.name] = { result, machineLoad: load };
        results.push({ name: bench.name, report, load });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
    sections.push(section(group, results));
  }
  mkdirSync('test-artifacts', { recursive: true });
  writeFileSync('test-artifacts/bench.json', JSON.stringify(raw, null, 2));
  console.log(sections.join('\n\n'));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
