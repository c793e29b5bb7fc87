/**
 * What Linux says about a process and the machine: memory from /proc/<pid>/status, CPU time
 * from /proc/<pid>/stat (every thread of the process, worker threads included), and the
 * machine's load from /proc/stat and /proc/loadavg (other engineers' tests run beside ours).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { sleep } from './stats.js';
import { REPO } from './paths.js';

/** Resident memory in KiB as the kernel accounts it. */
export interface ProcMemory {
  /** All resident pages. */
  vmRss: number;
  /** Private anonymous pages: heaps, stacks, onnxruntime's arenas — what the process really costs. */
  rssAnon: number;
  /** File-backed pages (node and onnxruntime's shared libraries, models read through mmap), shareable between processes. */
  rssFile: number;
  rssShmem: number;
  threads: number;
}

export function procMemory(pid: number): ProcMemory {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => {
    const match = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text);
    if (!match) throw new Error(`/proc/${pid}/status has no ${name}`);
    return Number(match[1]);
  };
  return { vmRss: field('VmRSS'), rssAnon: field('RssAnon'), rssFile: field('RssFile'), rssShmem: field('RssShmem'), threads: field('Threads') };
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** User + system CPU seconds the process has used so far, all its threads together. */
export function procCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

interface CpuTimes {
  busy: number;
  total: number;
}

function machineCpu(): CpuTimes {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const [user, nice, system, idle, iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
  const idleAll = idle! + iowait!;
  const busy = user! + nice! + system! + irq! + softirq! + steal!;
  return { busy, total: busy + idleAll };
}

export interface MachineLoad {
  /** 1-minute load average at the end of the span. */
  loadavg1: number;
  /** Share of all cores busy during the span, whoever used them (0..1). */
  busy: number;
  seconds: number;
}

/** Starts watching the machine; `end()` says how busy it was meanwhile. */
export function watchMachine(): { end(): MachineLoad } {
  const start = machineCpu();
  const startedAt = performance.now();
  return {
    end() {
      const end = machineCpu();
      const loadavg1 = Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
      return { loadavg1, busy: (end.busy - start.busy) / Math.max(1, end.total - start.total), seconds: (performance.now() - startedAt) / 1000 };
    },
  };
}

/**
 * Memory of a reference process: `node <args>`, read 1 s after it prints `ready` (or starts,
 * when `waitForReady` is false), then killed. Shows what any Node process pays on this machine.
 */
export async function referenceMemory(args: string[], waitForReady = true): Promise<{ memory: ProcMemory; breakdown: AnonBreakdown }> {
  // From the repository root, so that `-e` code resolves the workspace packages.
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], cwd: REPO });
  try {
    if (waitForReady) {
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
        child.once('exit', (code) => reject(new Error(`reference process exited (${code}): node ${args.join(' ')}`)));
      });
    }
    await sleep(1000);
    return { memory: procMemory(child.pid!), breakdown: procAnonBreakdown(child.pid!) };
  } finally {
    child.kill('SIGKILL');
  }
}

/** Anonymous resident memory split by who allocated it, in KiB (a heuristic over /proc/<pid>/smaps). */
export interface AnonBreakdown {
  /** glibc malloc: the main arena (`[heap]`) plus per-thread arenas (64 MiB-aligned reservations, the untouched rest `---p`). onnxruntime and native add-ons allocate here. */
  malloc: number;
  /** Every other anonymous mapping: mostly the V8 heaps (one per isolate: the main thread and each worker), plus thread stacks. */
  other: number;
  /** glibc thread arenas mapped (they outlive their threads and are reused; at most 8 per core by default). */
  arenas: number;
}

const ARENA_BYTES = 64 * 2 ** 20;

export function procAnonBreakdown(pid: number): AnonBreakdown {
  const maps: Array<{ start: number; end: number; perms: string; name: string; anon: number }> = [];
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) maps.push({ start: parseInt(head[1]!, 16), end: parseInt(head[2]!, 16), perms: head[3]!, name: head[4] ?? '', anon: 0 });
    else if (line.startsWith('Anonymous:') && maps.length > 0) maps[maps.length - 1]!.anon = Number(/(\d+)/.exec(line)![1]);
  }
  let malloc = 0;
  let other = 0;
  let arenas = 0;
  maps.forEach((m, i) => {
    const next = maps[i + 1];
    const arena = m.name === '' && m.start % ARENA_BYTES === 0 && next !== undefined && next.start === m.end && next.perms === '---p' && next.end - m.start === ARENA_BYTES;
    if (arena) arenas++;
    if (m.name === '[heap]' || arena) malloc += m.anon;
    else other += m.anon;
  });
  return { malloc, other, arenas };
}

/** Stops a child process gracefully (SIGTERM), SIGKILL after `graceMs`; resolves when it has exited. */
export async function stopChild(child: ChildProcess | null | undefined, graceMs = 60_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}
