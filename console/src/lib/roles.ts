/**
 * What the console offers each role. The hub decides every request on its own (access.ts); this
 * only keeps buttons a role cannot use off the screen, so a viewer never meets a 403.
 * Mirrors the access table: operators change devices, models and rollouts, acknowledge and
 * resolve alerts; reading the audit log needs an operator too.
 */
import type { Role } from './api.js';

const RANK: Record<Role, number> = { viewer: 0, operator: 1, admin: 2 };

export function atLeast(role: Role | undefined, least: Role): boolean {
  return role !== undefined && RANK[role] >= RANK[least];
}

/** Rollout actions, approvals, uploads, alert and work-order handling. */
export const canOperate = (role: Role | undefined): boolean => atLeast(role, 'operator');

/** `GET /api/v1/audit` is an operator's route. */
export const canReadAudit = (role: Role | undefined): boolean => atLeast(role, 'operator');
