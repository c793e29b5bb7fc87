/**
 * Display formatting. Pure functions of their arguments (the current time is passed in, never
 * read here) so that every view ticks from the one shared clock and tests need no fake timers.
 */
import type { ActiveModel, DeploymentPhase } from './api.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * "just now", "12 s ago", "4 min ago", "3 h ago", "6 d ago"; "never" for null. `time` is ISO 8601
 * or milliseconds since the epoch. Times slightly in
 * the future (the device's or hub's clock is ahead of ours) read as "just now".
 */
export function relativeTime(time: string | number | null, now: number): string {
  if (time === null) return 'never';
  const then = typeof time === 'number' ? time : Date.parse(time);
  if (Number.isNaN(then)) return 'unknown';
  const elapsed = now - then;
  if (elapsed < SECOND) return 'just now';
  if (elapsed < MINUTE) return `${Math.floor(elapsed / SECOND)} s ago`;
  if (elapsed < HOUR) return `${Math.floor(elapsed / MINUTE)} min ago`;
  if (elapsed < DAY) return `${Math.floor(elapsed / HOUR)} h ago`;
  return `${Math.floor(elapsed / DAY)} d ago`;
}

/** The full local date and time, for tooltips next to a relative time. */
export function absoluteTime(iso: string | null): string {
  if (iso === null) return 'never';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

/** `name@version`, the same reference the CLI takes (`cairn model show N@V`). */
export function modelRef(model: Pick<ActiveModel, 'name' | 'version'>): string {
  return `${model.name}@${model.version}`;
}

/** The first hex characters of a `sha256:…` digest, enough to tell bundles apart by eye. */
export function shortDigest(digest: string | null, length = 12): string {
  if (!digest) return '';
  const hex = digest.includes(':') ? digest.slice(digest.indexOf(':') + 1) : digest;
  return hex.slice(0, length);
}

const PHASE_LABELS: Record<DeploymentPhase, string> = {
  received: 'Received',
  downloading: 'Downloading',
  verifying: 'Verifying',
  probing: 'Probing',
  trial: 'Trial',
  committed: 'Committed',
  rolled_back: 'Rolled back',
  failed: 'Failed',
};

export function phaseLabel(phase: DeploymentPhase): string {
  return PHASE_LABELS[phase] ?? phase;
}

/** How a phase reads at a glance: still moving, settled well, or needing attention. */
export type PhaseTone = 'progress' | 'trial' | 'done' | 'warning' | 'danger';

export function phaseTone(phase: DeploymentPhase): PhaseTone {
  switch (phase) {
    case 'received':
    case 'downloading':
    case 'verifying':
    case 'probing':
      return 'progress';
    case 'trial':
      return 'trial';
    case 'committed':
      return 'done';
    case 'rolled_back':
      return 'warning';
    case 'failed':
      return 'danger';
    default:
      return 'progress';
  }
}

/** `key=value`, the label-selector spelling used by the CLI and rollouts. */
export function labelText(key: string, value: string): string {
  return `${key}=${value}`;
}

/** "1 device", "3 devices". */
export function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}

/** "812 B", "14.2 KiB", "3.1 MiB". */
export function bytes(count: number): string {
  if (!Number.isFinite(count)) return '–';
  if (count < 1024) return `${count} B`;
  const units = ['KiB', 'MiB', 'GiB'];
  let value = count / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

/** A share in 0..1 as "42 %", or a value already in percent with `alreadyPercent`. */
export function percent(value: number | null | undefined, digits = 0, alreadyPercent = false): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  return `${(alreadyPercent ? value : value * 100).toFixed(digits)} %`;
}

/** "45 s", "10 min", "2 h", "1.5 h", "3 d"; "0" for zero. */
export function duration(ms: number): string {
  if (ms <= 0) return '0';
  const pick = (unit: number, suffix: string) => `${Number((ms / unit).toFixed(1))} ${suffix}`;
  if (ms < MINUTE) return pick(SECOND, 's');
  if (ms < HOUR) return pick(MINUTE, 'min');
  if (ms < DAY) return pick(HOUR, 'h');
  return pick(DAY, 'd');
}

/** A number for a table cell: fixed digits, "–" for null. */
export function num(value: number | null | undefined, digits = 2): string {
  return value === null || value === undefined || !Number.isFinite(value) ? '–' : value.toFixed(digits);
}

/** Snake-case codes (`rolled_back`, `ingest_gap`) as words. */
export function words(code: string): string {
  const text = code.replace(/_/g, ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}
