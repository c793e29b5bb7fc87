/**
 * Prometheus metrics of one agent, served by the local API at `GET /metrics` (prom-client, as
 * on the hub; one registry per agent so several agents can share a process).
 *
 * Counted as it happens: inferences and their latency (this is an InferenceObserver of the
 * pipeline) and local API requests. Read at scrape time from the components, through
 * `MetricsView`: outbox depth and drops, the active bundle, trial, swaps, alerts, source
 * records, the hub connection, the drift window's PSI. prom-client's default metrics add the
 * process's CPU, memory and the event-loop delay (`cairn_agent_nodejs_eventloop_lag_*`).
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ActiveBundleT, DriftSummaryT } from '@cairn/shared';
import type { InferenceObserver } from './pipeline.js';
import type { OutboxStats } from './outbox.js';
import type { RecordIntakeStats } from './sources/record-intake.js';

/** What the metrics read at scrape time. */
export interface MetricsView {
  active(): ActiveBundleT | null;
  onTrial(): boolean;
  swaps(): number;
  alerts(): number;
  outbox(): OutboxStats;
  connected(): boolean;
  /** The stdin or MQTT source's counts, when one runs. */
  records(): { source: string; stats: RecordIntakeStats } | null;
  /** The drift monitor's window for the active model (undefined: not monitored). */
  drift(): DriftSummaryT | undefined;
}

/** Inference latency buckets in seconds: a small MLP answers in well under a millisecond, a large one in tens. */
const LATENCY_BUCKETS = [0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class AgentMetrics implements InferenceObserver {
  readonly registry = new Registry();
  private readonly inferences: Counter<'outcome'>;
  private readonly latency: Histogram;
  private readonly apiRequests: Counter<'route' | 'status'>;

  constructor(view: MetricsView) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'cairn_agent_' });
    this.inferences = new Counter({ name: 'cairn_agent_inferences_total', help: 'Inferences run, by outcome (ok, error)', labelNames: ['outcome'], registers });
    this.latency = new Histogram({ name: 'cairn_agent_inference_duration_seconds', help: 'Latency of successful inferences through the pipeline', buckets: LATENCY_BUCKETS, registers });
    this.apiRequests = new Counter({ name: 'cairn_agent_api_requests_total', help: 'Local API requests, by route and HTTP status', labelNames: ['route', 'status'], registers });
    // Zero-valued series exist from the start, so rate() works on the first scrape.
    this.inferences.inc({ outcome: 'ok' }, 0);
    this.inferences.inc({ outcome: 'error' }, 0);

    new Gauge({
      name: 'cairn_agent_active_bundle_info',
      help: 'The bundle being served (value 1), by name, version, digest and deployment; absent when nothing is served',
      labelNames: ['name', 'version', 'digest', 'deployment'],
      registers,
      collect() {
        this.reset();
        const active = view.active();
        if (active) this.set({ name: active.name, version: active.version, digest: active.digest, deployment: active.deploymentId }, 1);
      },
    });
    gauge('cairn_agent_model_loaded', 'Whether a model is served (1) or not (0)', () => (view.active() ? 1 : 0));
    gauge('cairn_agent_trial_active', 'Whether a candidate is on trial beside a hot standby', () => (view.onTrial() ? 1 : 0));
    gauge('cairn_agent_model_swaps', 'Model swaps since start (trial begins and rollbacks included)', () => view.swaps());
    gauge('cairn_agent_maintenance_alerts', 'Maintenance alerts raised since start', () => view.alerts());
    gauge('cairn_agent_outbox_depth', 'Telemetry and events waiting in the outbox for the hub', () => view.outbox().depth);
    gauge('cairn_agent_outbox_dropped', 'Telemetry records dropped from the full outbox (persisted across restarts)', () => view.outbox().dropped);
    gauge('cairn_agent_hub_connected', 'Whether the MQTT connection to the hub is up', () => (view.connected() ? 1 : 0));
    new Gauge({
      name: 'cairn_agent_source_records',
      help: 'Records from the stdin or MQTT source since start, by outcome (accepted or the refusal reason)',
      labelNames: ['source', 'outcome'],
      registers,
      collect() {
        this.reset();
        const records = view.records();
        if (!records) return;
        this.set({ source: records.source, outcome: 'accepted' }, records.stats.accepted);
        for (const [reason, count] of Object.entries(records.stats.rejected)) this.set({ source: records.source, outcome: reason }, count ?? 0);
      },
    });

    new Gauge({
      name: 'cairn_agent_drift_psi',
      help: 'PSI of the drift window against the device baseline: the predicted classes (prediction) and the most drifted input feature (max_feature); absent until the window has enough samples',
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const drift = view.drift();
        if (drift?.predictionPsi != null) this.set({ kind: 'prediction' }, drift.predictionPsi);
        if (drift?.maxFeaturePsi != null) this.set({ kind: 'max_feature' }, drift.maxFeaturePsi);
      },
    });

    function gauge(name: string, help: string, read: () => number): void {
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    }
  }

  success(latencyMs: number): void {
    this.inferences.inc({ outcome: 'ok' });
    this.latency.observe(latencyMs / 1000);
  }

  failure(): void {
    this.inferences.inc({ outcome: 'error' });
  }

  apiRequest(route: string, status: number): void {
    this.apiRequests.inc({ route, status: String(status) });
  }

  /** The Prometheus text exposition. */
  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
