/**
 * Maintenance rules (DESIGN §4, the last stage of the pipeline): a fault prediction becomes a
 * maintenance alert only when it persists, e.g. "p(fault) ≥ 0.8 in 3 of the last 5 windows", so
 * one noisy window raises nothing.
 *
 * Contracts:
 * - Only models that name their classes (manifest `features.classes`) are judged; the first
 *   class named `healthy` (or, without one, class 0) is the normal condition and never alerts.
 * - An alert is an event `maintenance_alert` carrying the machine, the fault class, the mean
 *   confidence over the windows that met the threshold, the rule, and the evidence windows.
 * - The same fault on the same machine alerts again only after `cooldownMs`; a different
 *   fault alerts at once. A change of model clears the history (its classes may differ).
 */
import type { MaintenanceAlertT } from '@cairn/shared';
import type { ServedBundle } from './active-model.js';
import type { Tensor } from './runtime/types.js';

export interface MaintenanceRuleConfig {
  /** Probability a fault class must reach in a window to count. */
  threshold: number;
  /** Windows that must reach it … */
  windowsRequired: number;
  /** … among the last this many. */
  windowCount: number;
  /** The same fault is not raised again for this long. */
  cooldownMs: number;
}

export const DEFAULT_MAINTENANCE_RULE: Readonly<MaintenanceRuleConfig> = Object.freeze({ threshold: 0.8, windowsRequired: 3, windowCount: 5, cooldownMs: 600_000 });

interface Window {
  ts: number;
  probabilities: Float32Array;
}

export class MaintenanceRules {
  private history: Window[] = [];
  private digest: string | null = null;
  private readonly lastRaised = new Map<string, number>();
  private raised = 0;

  constructor(
    private readonly machine: string,
    private readonly rule: MaintenanceRuleConfig,
    private readonly onAlert: (alert: MaintenanceAlertT) => void,
  ) {}

  get alerts(): number {
    return this.raised;
  }

  /** One pipeline window's outputs; returns the alert it raised, if any. */
  observe(ts: number, outputs: Record<string, Tensor>, bundle: ServedBundle): MaintenanceAlertT | null {
    const classes = classesOf(bundle);
    const scores = Object.values(outputs)[0]?.data;
    if (!classes || !scores || scores.length !== classes.length) return null;
    if (bundle.digest !== this.digest) {
      this.digest = bundle.digest;
      this.history = [];
    }
    this.history.push({ ts, probabilities: Float32Array.from(scores) });
    if (this.history.length > this.rule.windowCount) this.history.shift();

    const normal = Math.max(0, classes.indexOf('healthy'));
    let best: { index: number; hits: number; confidence: number } | null = null;
    for (let c = 0; c < classes.length; c++) {
      if (c === normal) continue;
      const hits = this.history.filter((w) => w.probabilities[c]! >= this.rule.threshold);
      if (hits.length < this.rule.windowsRequired) continue;
      const confidence = hits.reduce((sum, w) => sum + w.probabilities[c]!, 0) / hits.length;
      if (!best || confidence > best.confidence) best = { index: c, hits: hits.length, confidence };
    }
    if (!best) return null;
    const faultClass = classes[best.index]!;
    const last = this.lastRaised.get(faultClass);
    if (last !== undefined && ts - last < this.rule.cooldownMs) return null;
    this.lastRaised.set(faultClass, ts);
    this.raised++;
    const alert: MaintenanceAlertT = {
      machine: this.machine,
      faultClass,
      confidence: Math.round(best.confidence * 1e4) / 1e4,
      rule: `p(${faultClass}) >= ${this.rule.threshold} in ${this.rule.windowsRequired} of the last ${this.rule.windowCount} windows`.slice(0, 200),
      windows: this.history.map((w) => ({ ts: w.ts, probability: Math.round(Math.min(1, Math.max(0, w.probabilities[best.index]!)) * 1e4) / 1e4 })),
      model: { name: bundle.manifest.name, version: bundle.manifest.version, digest: bundle.digest },
    };
    this.onAlert(alert);
    return alert;
  }
}

function classesOf(bundle: ServedBundle): string[] | null {
  const classes = bundle.manifest.features?.classes;
  return Array.isArray(classes) && classes.every((c) => typeof c === 'string') ? (classes as string[]) : null;
}
