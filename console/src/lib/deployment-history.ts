/**
 * A device's deployment history from its events: one entry per deployment, newest first, with
 * every phase it passed through in order and the reason of a failure or rollback.
 */
import type { DeploymentPhase, DeviceEvent } from './api.js';

export interface DeploymentHistoryEntry {
  deploymentId: string;
  startedAt: number;
  lastAt: number;
  phases: { phase: DeploymentPhase; ts: number; reason?: string; message?: string }[];
  final: DeploymentPhase;
  reason: string | null;
}

export function deploymentHistory(events: readonly DeviceEvent[]): DeploymentHistoryEntry[] {
  const byId = new Map<string, DeploymentHistoryEntry>();
  const ordered = events.filter((e) => e.type === 'deployment' && e.deploymentId && e.phase).sort((a, b) => a.ts - b.ts);
  for (const event of ordered) {
    const id = event.deploymentId!;
    const phase = event.phase!;
    let entry = byId.get(id);
    if (!entry) {
      entry = { deploymentId: id, startedAt: event.ts, lastAt: event.ts, phases: [], final: phase, reason: null };
      byId.set(id, entry);
    }
    entry.phases.push({ phase, ts: event.ts, ...(event.reason ? { reason: event.reason } : {}), ...(event.message ? { message: event.message } : {}) });
    entry.lastAt = event.ts;
    entry.final = phase;
    if (event.reason) entry.reason = event.reason;
  }
  return [...byId.values()].sort((a, b) => b.lastAt - a.lastAt);
}
