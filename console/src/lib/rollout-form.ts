/**
 * The rollout wizard's form and the request it sends (`POST /api/v1/rollouts`). Pure, so the
 * translation from what the operator typed to the hub's spec is tested under node:test. The hub
 * checks everything again (rollout-spec.ts) and names the field it refuses; this only catches
 * what can be seen while typing.
 */
import type { GateRequest, RolloutRequest } from './api.js';

export interface StageForm {
  /** "10%" or a device count. */
  size: string;
  successThreshold: string;
  failureThreshold: string;
  bake: string;
}

export interface RolloutForm {
  model: string;
  selector: string;
  stages: StageForm[];
  breachPolicy: 'pause' | 'rollback';
  gates: { driftPsi: string; latencyP95Ratio: string; errorRateDelta: string; minSamples: string };
  devicesPerMinute: string;
  window: { cron: string; duration: string; timezone: string };
  description: string;
}

export const DEFAULT_STAGES: StageForm[] = ['10%', '50%', '100%'].map((size) => ({ size, successThreshold: '95', failureThreshold: '5', bake: '0' }));

export function emptyForm(): RolloutForm {
  return {
    model: '',
    selector: '',
    stages: DEFAULT_STAGES.map((stage) => ({ ...stage })),
    breachPolicy: 'pause',
    gates: { driftPsi: '', latencyP95Ratio: '', errorRateDelta: '', minSamples: '' },
    devicesPerMinute: '',
    window: { cron: '', duration: '', timezone: '' },
    description: '',
  };
}

const DURATION = /^\d+(\.\d+)?(ms|s|m|h|d)?$/;

export type FormResult = { ok: true; request: RolloutRequest } | { ok: false; field: string; message: string };

/** Turns the form into the hub's request, or names the first field that cannot be right. */
export function buildRolloutRequest(form: RolloutForm): FormResult {
  if (!/^[^@\s]+@[^@\s]+$/.test(form.model)) return { ok: false, field: 'model', message: 'choose a model version' };
  if (form.stages.length === 0) return { ok: false, field: 'stages', message: 'a rollout needs at least one stage' };
  const stages: RolloutRequest['stages'] = [];
  for (const [index, stage] of form.stages.entries()) {
    const field = `stages[${index}]`;
    const sizeText = stage.size.trim();
    let size: string | number;
    if (/^\d+(\.\d+)?%$/.test(sizeText)) size = sizeText;
    else if (/^\d+$/.test(sizeText) && Number(sizeText) > 0) size = Number(sizeText);
    else return { ok: false, field: `${field}.size`, message: 'a share like 10% or a device count' };
    const success = percentField(stage.successThreshold);
    const failure = percentField(stage.failureThreshold);
    if (success === undefined) return { ok: false, field: `${field}.successThreshold`, message: 'a percentage from 0 to 100' };
    if (failure === undefined) return { ok: false, field: `${field}.failureThreshold`, message: 'a percentage from 0 to 100' };
    const bake = stage.bake.trim();
    if (bake !== '' && !DURATION.test(bake)) return { ok: false, field: `${field}.bake`, message: 'a duration like 30s, 10m or 2h' };
    stages.push({ size, ...(success === null ? {} : { successThreshold: success }), ...(failure === null ? {} : { failureThreshold: failure }), ...(bake && bake !== '0' ? { bake } : {}) });
  }
  const gates: GateRequest = {};
  for (const key of ['driftPsi', 'latencyP95Ratio', 'errorRateDelta', 'minSamples'] as const) {
    const text = form.gates[key].trim();
    if (text === '') continue;
    const value = Number(text);
    if (!Number.isFinite(value) || value < 0) return { ok: false, field: `gates.${key}`, message: 'a non-negative number' };
    gates[key] = value;
  }
  const hasGates = Object.keys(gates).length > 0;
  const request: RolloutRequest = {
    model: form.model,
    stages: hasGates ? stages.map((stage) => ({ ...stage, gates })) : stages,
    breachPolicy: form.breachPolicy,
  };
  if (form.selector.trim() !== '') request.selector = form.selector.trim();
  const rate = form.devicesPerMinute.trim();
  if (rate !== '') {
    if (!/^\d+$/.test(rate) || Number(rate) < 1) return { ok: false, field: 'rateLimit', message: 'devices per minute, a whole number ≥ 1' };
    request.rateLimit = { devicesPerMinute: Number(rate) };
  }
  const cron = form.window.cron.trim();
  if (cron !== '') {
    const duration = form.window.duration.trim();
    if (!DURATION.test(duration)) return { ok: false, field: 'window.duration', message: 'how long the window stays open, like 2h' };
    request.window = { cron, duration, ...(form.window.timezone.trim() ? { timezone: form.window.timezone.trim() } : {}) };
  }
  if (form.description.trim() !== '') request.description = form.description.trim();
  return { ok: true, request };
}

/** '' → null (the hub's default), a number in 0..100, or undefined when it is neither. */
function percentField(text: string): number | null | undefined {
  const trimmed = text.trim();
  if (trimmed === '') return null;
  const value = Number(trimmed);
  return Number.isFinite(value) && value >= 0 && value <= 100 ? value : undefined;
}
