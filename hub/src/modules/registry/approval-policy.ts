/**
 * The approval policy (four eyes): a model version pushed by one operator may run on at most
 * `approval.canaryDevices` devices (default 1, the canary) until an operator or admin other than
 * the one who pushed it approves it. The count is of devices whose current desired document
 * names the version plus the new targets, so repeated one-device deployments cannot add up to
 * a fleet.
 *
 * Direct deployments call `assertMayDeploy` before they sign anything; a staged rollout asks
 * `approvalShortfall` before each batch and waits (status `approval_required`) instead of failing.
 */
import type { HubContext } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import type { AuditActor } from '../audit/audit-log.js';
import { formatModelRef } from './model-ref.js';
import type { ModelVersion } from './registry.repository.js';

export function isApproved(ctx: Pick<HubContext, 'registry'>, model: ModelVersion): boolean {
  return ctx.registry.approvals(model.name, model.version).length > 0;
}

/** How far giving `targetDeviceIds` the version would exceed the canary allowance, or null when the policy allows it. */
export function approvalShortfall(
  ctx: Pick<HubContext, 'registry' | 'deployments' | 'config'>,
  model: ModelVersion,
  targetDeviceIds: readonly string[],
): { devices: number; canary: number } | null {
  if (isApproved(ctx, model)) return null;
  const devices = new Set([...ctx.deployments.devicesAssigned(model.name, model.version), ...targetDeviceIds]).size;
  const canary = ctx.config.approval.canaryDevices;
  return devices > canary ? { devices, canary } : null;
}

export function assertMayDeploy(ctx: Pick<HubContext, 'registry' | 'deployments' | 'config'>, model: ModelVersion, targetDeviceIds: readonly string[]): void {
  const shortfall = approvalShortfall(ctx, model, targetDeviceIds);
  if (shortfall) throw Errors.approvalRequired(formatModelRef(model), shortfall.devices, shortfall.canary);
}

/** Records `actor`'s approval (idempotent); refuses the one who pushed the version. */
export function approveModel(ctx: Pick<HubContext, 'registry' | 'audit' | 'db' | 'clock'>, actor: AuditActor, model: ModelVersion): void {
  const ref = formatModelRef(model);
  if (model.pushedBy === actor.actor) throw Errors.selfApproval(ref);
  ctx.db.transaction(() => {
    if (ctx.registry.approve(model.name, model.version, actor.actor, ctx.clock())) {
      ctx.audit.append(actor, { action: 'model.approve', target: `model:${ref}`, after: { approvedBy: actor.actor, pushedBy: model.pushedBy } });
    }
  })();
}
