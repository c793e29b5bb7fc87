/**
 * The agent's error catalogue. Each error has a stable `code`; deployment failures also carry
 * the protocol `reason` (shared/bundle/reasons.ts) that travels in events and `reported`.
 */
import type { RejectionReason } from '@cairn/shared';

export class AgentError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

/** The configuration is invalid; `problems` lists every error found, one line each. */
export class ConfigError extends AgentError {
  constructor(readonly problems: string[]) {
    super('CAIRN_AGENT_CONFIG', `invalid agent configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

/** A deployment could not converge; nothing changed on the device. */
export class DeploymentFailure extends AgentError {
  constructor(
    readonly reason: RejectionReason,
    message: string,
  ) {
    super('CAIRN_AGENT_DEPLOYMENT_FAILED', message);
    this.name = 'DeploymentFailure';
  }
}

/** Work that was superseded by newer desired state or by stop(). Never reported as a failure. */
export class SupersededError extends AgentError {
  constructor(message = 'superseded') {
    super('CAIRN_AGENT_SUPERSEDED', message);
    this.name = 'SupersededError';
  }
}

/** No model is active, so there is nothing to run an inference on. */
export class NoModelError extends AgentError {
  constructor() {
    super('CAIRN_AGENT_NO_MODEL', 'no model is loaded');
    this.name = 'NoModelError';
  }
}

export function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw new SupersededError();
}

/** Fits a message into the protocol's text fields (Message: 2000 chars). */
export function clip(text: string, max = 2000): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
