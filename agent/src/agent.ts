/**
 * The agent: its components, composed explicitly. Each component's constructor does nothing;
 * `start()` brings them up in dependency order and `stop()` takes them down in reverse.
 *
 *   state store → blob store → runtime → reconciler (serves the persisted bundle, offline) →
 *   local API, simulated source, telemetry → connection (in the background) → resume convergence
 *
 * Messages from the broker are routed here by topic kind, so every component sees only the
 * payloads it owns. Nothing a peer sends can crash the agent: bad payloads are dropped and
 * counted (`status.dropped`), refused desired documents are counted (`status.rejected`).
 */
import type { Readable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { AGENT_VERSION } from './version.js';
import type { AgentConfig } from './config.js';
import { BlobStore } from './adapters/blob-store.js';
import type { ActiveBundleT, DeploymentStatusT, DeviceEventT, DriftSummaryT, HubToAgentKind } from '@cairn/shared';
import type { ModelRuntime } from './components/runtime/types.js';
import { createWorkerRuntime } from './components/runtime/worker-runtime.js';
import { StateStore } from './components/state-store.js';
import { Connection, type BackoffOptions, type ConnectionState } from './components/connection.js';
import { DropCounter } from './components/drop-counter.js';
import { EventPublisher } from './components/events.js';
import { Outbox, type OutboxStats } from './components/outbox.js';
import { Downloader, type DownloadProgress } from './components/downloader.js';
import { ActiveModel } from './components/active-model.js';
import { InferenceStats } from './components/inference-stats.js';
import { Pipeline } from './components/pipeline.js';
import { DEFAULT_MAINTENANCE_RULE, MaintenanceRules } from './components/maintenance-rules.js';
import { Reconciler } from './components/reconciler.js';
import { ReportedPublisher, activeBundleOf } from './components/reported.js';
import { TelemetryReporter } from './components/telemetry.js';
import { createInputSource, type InputSource, type SourceStats } from './components/sources/input-source.js';
import { AgentMetrics } from './components/agent-metrics.js';
import { DEFAULT_DRIFT_CONFIG, DriftMonitor } from './components/drift-monitor.js';
import { DEFAULT_BASELINE_SAMPLES, DriftBaseline } from './components/drift-baseline.js';
import { enrollOnce, loadCredentials, type Credentials } from './components/device-identity.js';
import { loadClientTls, type ClientTls } from './adapters/https-client.js';
import { backoffDelay } from './components/connection.js';
import { LocalApi } from './components/local-api.js';
import { CommandHandler } from './components/commands.js';
import { DEFAULT_HEALTH_POLICY, type HealthPolicy } from '@cairn/shared';
import { committedOf, type SlotNameT } from './components/state-store.js';

/** Knobs for tests and the simulator; production uses the defaults. */
export interface AgentTuning {
  /** Reconnect backoff; default base 1 s, cap 30 s (full jitter). */
  reconnect?: BackoffOptions;
  /** Re-request missing blob chunks after this long without progress; default 15 s. */
  chunkTimeoutMs?: number;
  /** Such re-requests in a row before a download fails; default 6. */
  chunkRetries?: number;
  /** MQTT keepalive in seconds; default 30. */
  keepaliveSec?: number;
  /** Outbox bound in records; default 10,000. */
  outboxMaxRecords?: number;
}

export interface AgentDeps {
  /** A runtime shared with other agents (the simulator); the agent then does not close it. */
  runtime?: ModelRuntime;
  logger?: Logger;
  clock?: () => number;
  tuning?: AgentTuning;
  /** What a `stdin` source reads; default process.stdin. */
  stdin?: Readable;
}

export interface AgentStatus {
  deviceId: string;
  agentVersion: string;
  running: boolean;
  connection: { state: ConnectionState; epoch: number; connects: number; lastError: string | null };
  connected: boolean;
  /**
   * Whether the device holds MQTT credentials: `enrolled`; `enrolling` (asking the hub, or
   * `pending` an operator's acceptance); `not_enrolled` (no credentials and no `enrollment` in
   * the config: the hub refuses the connection).
   */
  enrollment: { state: 'enrolled' | 'enrolling' | 'pending' | 'not_enrolled'; lastError: string | null };
  /** What is served right now. */
  active: ActiveBundleT | null;
  deployment: DeploymentStatusT | null;
  lastDesiredSeq: number;
  keyringVersion: number;
  /** Whether a convergence (download, verification, probing, trial) is running. */
  converging: boolean;
  /** The two slots' digests, the committed one, and whether a candidate is on trial (serving beside a hot standby). */
  slots: { A: string | null; B: string | null; committed: SlotNameT | null; trial: boolean };
  /** Digests that failed here, with the deployment they failed under and why. */
  quarantine: ReadonlyArray<{ digest: string; deploymentId: string; reason: string }>;
  /** Model swaps so far (trial begins and rollbacks included). */
  swaps: number;
  /** Maintenance alerts raised since start. */
  alerts: number;
  download: DownloadProgress | null;
  /** Payloads dropped, by `<topic kind>:<reason>`. */
  dropped: Record<string, number>;
  /** Desired documents refused, by reason. */
  rejected: Record<string, number>;
  telemetrySent: number;
  outbox: OutboxStats;
  inferences: { total: number; errors: number };
  api: { port: number; requests: number; errors: number } | null;
  recentEvents: readonly DeviceEventT[];
  /** The input source's counts (records accepted and refused by reason; the simulated machine's diagnoses). */
  source: SourceStats | null;
  /** The drift window of the active model, as the next telemetry summary will carry it; null when not monitored. */
  drift: DriftSummaryT | null;
}

export interface Agent {
  readonly deviceId: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** A snapshot of the agent's state, for tests and diagnostics. */
  readonly status: AgentStatus;
}

/** How long a graceful stop waits for the outbox to empty. */
const OUTBOX_DRAIN_MS = 2000;

export function createAgent(config: AgentConfig, deps: AgentDeps = {}): Agent {
  return new CairnAgent(config, deps);
}

class CairnAgent implements Agent {
  readonly deviceId: string;
  private readonly logger: Logger;
  private readonly clock: () => number;
  private readonly ownsRuntime: boolean;
  private runtime: ModelRuntime | null;
  private running = false;
  private credentials: Credentials | null = null;
  private enrollmentState: AgentStatus['enrollment'] = { state: 'not_enrolled', lastError: null };
  private enrolling: AbortController | null = null;

  private readonly drops: DropCounter;
  private readonly state: StateStore;
  private readonly blobs: BlobStore;
  private readonly connection: Connection;
  private readonly outbox: Outbox;
  private readonly events: EventPublisher;
  private readonly downloader: Downloader;
  private readonly active: ActiveModel;
  private readonly stats: InferenceStats;
  private readonly driftBaseline: DriftBaseline;
  private readonly drift: DriftMonitor;
  private readonly pipeline: Pipeline;
  private readonly rules: MaintenanceRules;
  private readonly reported: ReportedPublisher;
  private readonly telemetry: TelemetryReporter;
  private readonly commands: CommandHandler;
  private readonly reconciler: Reconciler;
  private readonly source: InputSource | null;
  private readonly api: LocalApi | null;
  /** Only with the local API (which serves them): a simulated fleet keeps none. */
  private readonly metrics: AgentMetrics | null;
  /** `tls.*` of the config, read once: MQTT over TLS and HTTPS enrollment trust the same CA. */
  private readonly tls: ClientTls | undefined;

  constructor(
    private readonly config: AgentConfig,
    deps: AgentDeps,
  ) {
    this.deviceId = config.deviceId;
    this.clock = deps.clock ?? Date.now;
    this.logger = (deps.logger ?? pino({ level: config.logLevel })).child({ deviceId: config.deviceId });
    this.ownsRuntime = deps.runtime === undefined;
    this.runtime = deps.runtime ?? null;
    const tuning = deps.tuning ?? {};
    const log = (component: string): Logger => this.logger.child({ component });

    this.tls = loadClientTls(config.tls);
    this.drops = new DropCounter(log('inbox'));
    this.state = new StateStore({ stateDir: config.stateDir, logger: log('state'), clock: this.clock });
    this.blobs = new BlobStore(config.stateDir);
    this.connection = new Connection({
      deviceId: config.deviceId,
      mqttUrl: config.mqttUrl,
      agentVersion: AGENT_VERSION,
      state: this.state,
      drops: this.drops,
      logger: log('connection'),
      clock: this.clock,
      ...(tuning.reconnect ? { backoff: tuning.reconnect } : {}),
      ...(tuning.keepaliveSec ? { keepaliveSec: tuning.keepaliveSec } : {}),
      password: () => this.credentials?.password,
      ...(this.tls ? { tls: this.tls } : {}),
    });
    this.outbox = new Outbox({ stateDir: config.stateDir, connection: this.connection, telemetrySeqCeiling: () => this.state.state.telemetrySeqCeiling, clock: this.clock, logger: log('outbox'), ...(tuning.outboxMaxRecords ? { maxRecords: tuning.outboxMaxRecords } : {}) });
    this.events = new EventPublisher(this.outbox, this.clock, log('events'));
    this.downloader = new Downloader({
      connection: this.connection,
      blobs: this.blobs,
      drops: this.drops,
      logger: log('downloader'),
      ...(tuning.chunkTimeoutMs ? { chunkTimeoutMs: tuning.chunkTimeoutMs } : {}),
      ...(tuning.chunkRetries !== undefined ? { maxRetries: tuning.chunkRetries } : {}),
    });
    this.active = new ActiveModel(log('model'));
    this.stats = new InferenceStats();
    const { baselineSamples, ...driftConfig } = config.drift;
    this.driftBaseline = new DriftBaseline(config.stateDir, baselineSamples ?? DEFAULT_BASELINE_SAMPLES, this.clock, log('drift'));
    this.drift = new DriftMonitor({ ...DEFAULT_DRIFT_CONFIG, ...driftConfig }, this.driftBaseline, this.clock, log('drift'));
    const machine = config.labels['machine'] ?? config.deviceId;
    this.rules = new MaintenanceRules(machine, { ...DEFAULT_MAINTENANCE_RULE, ...config.rules }, (alert) => {
      this.logger.warn({ alert: { machine: alert.machine, faultClass: alert.faultClass, confidence: alert.confidence } }, 'maintenance alert');
      this.events.publish({ type: 'maintenance_alert', message: `${alert.machine}: ${alert.faultClass} (confidence ${alert.confidence.toFixed(2)}, ${alert.rule})`, alert });
    });
    this.metrics =
      config.api === false
        ? null
        : new AgentMetrics({
            active: () => (this.active.current ? activeBundleOf(this.active.current.bundle) : null),
            onTrial: () => this.active.onTrial,
            swaps: () => this.active.swapCount,
            alerts: () => this.rules.alerts,
            outbox: () => this.outbox.stats,
            connected: () => this.connection.connected,
            records: () => (this.source?.intake ? { source: this.source.stats.kind, stats: this.source.intake.stats } : null),
            drift: () => this.drift.summary(this.active.current?.bundle ?? null),
          });
    this.pipeline = new Pipeline(this.active, this.metrics ? [this.stats, this.drift, this.metrics] : [this.stats, this.drift], this.rules);
    this.reported = new ReportedPublisher({ connection: this.connection, state: this.state, served: () => this.active.current?.bundle ?? null, labels: config.labels, agentVersion: AGENT_VERSION, clock: this.clock, logger: log('reported') });
    this.telemetry = new TelemetryReporter({ intervalMs: config.telemetryIntervalMs, stats: this.stats, outbox: this.outbox, state: this.state, served: () => this.active.current?.bundle ?? null, drift: (served) => this.drift.summary(served), clock: this.clock, logger: log('telemetry') });
    this.reconciler = new Reconciler({
      deviceId: config.deviceId,
      rootPublicKey: new Uint8Array(Buffer.from(config.rootPublicKey, 'base64')),
      agentVersion: AGENT_VERSION,
      state: this.state,
      blobs: this.blobs,
      downloader: this.downloader,
      runtime: () => this.requireRuntime(),
      active: this.active,
      events: this.events,
      drops: this.drops,
      logger: log('reconciler'),
      clock: this.clock,
      onChange: () => this.reported.publish(),
      healthDefaults: healthDefaults(config.health),
    });
    this.commands = new CommandHandler(this.connection, this.drops, log('commands'));
    this.source = createInputSource(config.source, { deviceId: config.deviceId, active: this.active, pipeline: this.pipeline, clock: this.clock, logger: log('source'), ...(deps.stdin ? { stdin: deps.stdin } : {}) });
    this.api =
      config.api === false || !this.metrics
        ? null
        : new LocalApi({ host: config.api.host, port: config.api.port, active: this.active, pipeline: this.pipeline, metrics: this.metrics, connected: () => this.connection.connected, logger: log('api') });
  }

  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.state.start();
      this.outbox.start();
      await this.driftBaseline.load();
      await this.blobs.start();
      this.runtime ??= createWorkerRuntime({ intraOpNumThreads: 1 });
      await this.reconciler.start();
      this.downloader.start();
      await this.api?.start();
      this.source?.start();
      this.telemetry.start();

      this.connection.on('message', (kind, payload) => this.route(kind, payload));
      this.connection.on('connect', () => {
        this.reported.publish();
        this.downloader.onConnect();
      });
      this.credentials = await loadCredentials(this.config.stateDir, this.logger);
      if (this.credentials) {
        this.enrollmentState = { state: 'enrolled', lastError: null };
        await this.connection.start();
      } else if (this.config.enrollment) {
        // Serve the persisted model offline meanwhile; connect once the hub has let us in.
        this.enrolling = new AbortController();
        void this.enrollThenConnect(this.config.enrollment, this.enrolling.signal);
      } else {
        this.logger.error('not enrolled: no credentials in the state directory and no `enrollment` in the config; the hub will refuse the connection (run `cairn-agent enroll`)');
        await this.connection.start();
      }
      this.reconciler.resume();
      this.logger.info({ agentVersion: AGENT_VERSION, mqttUrl: this.config.mqttUrl, active: this.status.active?.digest ?? null }, 'agent started');
    } catch (err) {
      await this.stop().catch(() => undefined);
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.enrolling?.abort();
    this.enrolling = null;
    await this.source?.stop();
    this.telemetry.stop();
    await this.api?.stop();
    this.downloader.stop();
    await this.reconciler.stop();
    // Graceful: what is queued (the last events included) leaves before the offline presence.
    if (!(await this.outbox.drain(OUTBOX_DRAIN_MS))) this.logger.info({ depth: this.outbox.stats.depth }, 'stopping with records left in the outbox; they are sent after the next start');
    await this.connection.stop();
    this.outbox.stop();
    this.connection.removeAllListeners();
    await this.active.stop();
    await this.driftBaseline.stop();
    if (this.ownsRuntime && this.runtime) {
      await this.runtime.close();
      this.runtime = null;
    }
    await this.state.stop();
    this.logger.info('agent stopped');
  }

  /** Enrollment attempts until the device is active (pending: as the hub says; errors: backoff up to 5 min), then the connection starts. */
  private async enrollThenConnect(enrollment: NonNullable<AgentConfig['enrollment']>, signal: AbortSignal): Promise<void> {
    const log = this.logger.child({ component: 'enrollment' });
    for (let attempt = 0; !signal.aborted; ) {
      let waitMs: number;
      try {
        this.enrollmentState = { ...this.enrollmentState, state: this.enrollmentState.state === 'pending' ? 'pending' : 'enrolling' };
        const outcome = await enrollOnce({
          hubUrl: enrollment.hubUrl,
          deviceId: this.deviceId,
          stateDir: this.config.stateDir,
          rootPublicKey: this.config.rootPublicKey,
          ...(enrollment.token !== undefined ? { token: enrollment.token } : {}),
          ...(this.tls ? { tls: this.tls } : {}),
          clock: this.clock,
        });
        if (signal.aborted) return;
        if (outcome.status === 'active') {
          this.credentials = outcome.credentials;
          this.enrollmentState = { state: 'enrolled', lastError: null };
          log.info({ hubUrl: enrollment.hubUrl }, 'enrolled; connecting');
          await this.connection.start();
          return;
        }
        if (this.enrollmentState.state !== 'pending') log.warn('enrollment pending: an operator must accept this device (cairn device accept)');
        this.enrollmentState = { state: 'pending', lastError: null };
        waitMs = outcome.retryAfterSec * 1000;
      } catch (err) {
        this.enrollmentState = { ...this.enrollmentState, lastError: (err as Error).message };
        waitMs = Math.max(1000, backoffDelay(attempt++, { baseMs: 5000, capMs: 300_000 }));
        log.warn({ code: (err as { code?: string }).code, retryInMs: waitMs }, `enrollment failed: ${(err as Error).message}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, waitMs);
        signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
    }
  }

  private requireRuntime(): ModelRuntime {
    if (!this.runtime) throw new Error('the model runtime is not started');
    return this.runtime;
  }

  private route(kind: HubToAgentKind, payload: Buffer): void {
    try {
      switch (kind) {
        case 'desired':
          this.reconciler.onDesired(payload);
          break;
        case 'blob/res':
          this.downloader.onFrame(payload);
          break;
        case 'cmd':
          this.commands.onCommand(payload);
          break;
      }
    } catch (err) {
      // The message loop never dies: a handler bug drops the one message.
      this.drops.drop(kind, 'handler_error', (err as Error).message);
    }
  }

  get status(): AgentStatus {
    const s = this.state.state;
    const current = this.active.current;
    const apiPort = this.api?.port ?? null;
    return {
      deviceId: this.deviceId,
      agentVersion: AGENT_VERSION,
      running: this.running,
      connection: this.connection.status,
      connected: this.connection.connected,
      enrollment: { ...this.enrollmentState },
      active: current ? activeBundleOf(current.bundle) : null,
      deployment: s.deployment,
      lastDesiredSeq: s.lastDesiredSeq,
      keyringVersion: s.keyringVersion,
      converging: this.reconciler.busy,
      slots: { A: s.slots.A?.digest ?? null, B: s.slots.B?.digest ?? null, committed: committedOf(s) ? s.activeSlot : null, trial: this.active.onTrial },
      quarantine: s.quarantine.map(({ digest, deploymentId, reason }) => ({ digest, deploymentId, reason })),
      swaps: this.active.swapCount,
      alerts: this.rules.alerts,
      download: this.downloader.progress,
      dropped: this.drops.snapshot(),
      rejected: this.reconciler.rejected,
      telemetrySent: this.telemetry.count,
      outbox: this.outbox.stats,
      inferences: { total: this.stats.totals.inferences, errors: this.stats.totals.errors },
      api: this.api && apiPort !== null ? { port: apiPort, ...this.api.stats } : null,
      recentEvents: this.events.recentEvents,
      source: this.source?.stats ?? null,
      drift: this.drift.summary(current?.bundle ?? null) ?? null,
    };
  }
}

/** The configured defaults over DEFAULT_HEALTH_POLICY. */
function healthDefaults(overrides: AgentConfig['health']): HealthPolicy {
  return {
    ...DEFAULT_HEALTH_POLICY,
    ...(overrides.probeTolerance !== undefined ? { probeTolerance: overrides.probeTolerance } : {}),
    ...(overrides.probeLatencyMs !== undefined ? { probeLatencyMs: overrides.probeLatencyMs } : {}),
    trial: { ...DEFAULT_HEALTH_POLICY.trial, ...overrides.trial },
  };
}
