/** How a benchmark hands its results to the runner: raw numbers, target rows and Markdown. */

export interface TargetRow {
  what: string;
  measured: string;
  target: string;
  /** null: no target, reported only. */
  met: boolean | null;
}

export interface BenchReport {
  targets: TargetRow[];
  /** Markdown: the detail tables of this benchmark. */
  details: string;
}

export interface Benchmark<R> {
  /** The CLI filter name (`npm run bench -- <name>`). */
  name: string;
  run(workDir: string): Promise<R>;
  report(result: R): BenchReport;
}

/** Runs a benchmark and keeps its raw result and its report together (the group runner's view of it). */
export async function runBenchmark<R>(bench: Benchmark<R>, workDir: string): Promise<{ raw: R; report: BenchReport }> {
  const raw = await bench.run(workDir);
  return { raw, report: bench.report(raw) };
}

export function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}
