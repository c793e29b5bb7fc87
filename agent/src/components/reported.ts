/**
 * The device's retained `reported` state (DESIGN §2): labels, hardware facts, the active bundle,
 * the current deployment and its phase, the last desired seq applied and the keyring version.
 * Published on every connect and whenever it changes; only while connected, because a retained
 * message queued offline could land after a newer one sent on reconnect.
 */
import os from 'node:os';
import type { Logger } from 'pino';
import type { ActiveBundleT, HardwareFactsT, LabelsT, ReportedT } from '@cairn/shared';
import type { Connection } from './connection.js';
import type { ServedBundle } from './active-model.js';
import type { StateStore } from './state-store.js';

export function hardwareFacts(): HardwareFactsT {
  return {
    platform: os.platform(),
    arch: os.arch(),
    cpus: os.cpus().length,
    memoryMb: Math.round(os.totalmem() / 2 ** 20),
    node: process.version,
  };
}

export interface ReportedOptions {
  connection: Connection;
  state: StateStore;
  /** What serves right now (a candidate on trial included). */
  served: () => ServedBundle | null;
  labels: LabelsT;
  agentVersion: string;
  clock: () => number;
  logger: Logger;
}

export class ReportedPublisher {
  private readonly hardware = hardwareFacts();
  private published = 0;

  constructor(private readonly options: ReportedOptions) {}

  /** What `reported` says now. */
  build(): ReportedT {
    const { state, labels, agentVersion, clock } = this.options;
    const s = state.state;
    return {
      agentVersion,
      ts: clock(),
      labels,
      hardware: this.hardware,
      active: activeBundleOf(this.options.served()),
      deployment: s.deployment,
      lastDesiredSeq: Math.max(0, s.lastDesiredSeq),
      keyringVersion: s.keyringVersion,
    };
  }

  publish(): void {
    const { connection, logger } = this.options;
    if (!connection.connected) return;
    this.published++;
    connection.publish('reported', this.build()).catch((err: Error) => logger.debug({ err }, 'reported not acknowledged'));
  }

  get count(): number {
    return this.published;
  }
}

export function activeBundleOf(active: { manifest: { name: string; version: string }; digest: string; deploymentId: string } | null): ActiveBundleT | null {
  return active ? { name: active.manifest.name, version: active.manifest.version, digest: active.digest, deploymentId: active.deploymentId } : null;
}
