/**
 * What `buildHub` hands to every module plugin: the shared infrastructure, created once and
 * composed explicitly. Repositories live here too so that a module can read another module's
 * state through its repository's methods (never its tables).
 */
import type { Logger } from 'pino';
import type { HubConfig } from './config.js';
import type { Db } from './db.js';
import type { BrokerPort } from './broker.js';
import type { EventBus } from './bus.js';
import type { HubKeys } from './keys.js';
import type { HubMetrics } from './metrics.js';
import type { DevicesRepository } from '../modules/devices/devices.repository.js';
import type { RegistryRepository } from '../modules/registry/registry.repository.js';
import type { BlobStore } from '../modules/registry/blob-store.js';
import type { DeploymentsRepository } from '../modules/deployments/deployments.repository.js';
import type { TelemetryRepository } from '../modules/telemetry/telemetry.repository.js';
import type { AlertsRepository } from '../modules/alerts/alerts.repository.js';
import type { EnrollmentService } from '../modules/enrollment/enrollment.service.js';
import type { OperatorsService } from '../modules/operators/operators.service.js';
import type { AuditLog } from '../modules/audit/audit-log.js';
import type { DesiredPublisher } from '../modules/deployments/desired-publisher.js';
import type { RolloutEngine } from '../modules/rollouts/rollout-engine.js';

export interface HubContext {
  config: HubConfig;
  logger: Logger;
  db: Db;
  broker: BrokerPort;
  bus: EventBus;
  keys: HubKeys;
  metrics: HubMetrics;
  clock: () => number;
  devices: DevicesRepository;
  enrollment: EnrollmentService;
  registry: RegistryRepository;
  blobs: BlobStore;
  deployments: DeploymentsRepository;
  telemetry: TelemetryRepository;
  /** Alerts and work orders (read-only use outside the alerts module: counts, lists). */
  alerts: AlertsRepository;
  /** Users, API tokens, sessions: authentication and their management. */
  operators: OperatorsService;
  /** Append-only, hash-chained record of every state-changing action. */
  audit: AuditLog;
  /** The one queue that publishes signed desired documents (retained). */
  desired: DesiredPublisher;
  /** Staged rollouts, and direct deployments as one-stage rollouts. */
  rollouts: RolloutEngine;
}

export interface ModuleOptions {
  ctx: HubContext;
}
