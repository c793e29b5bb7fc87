/**
 * Prometheus metrics of the hub (prom-client, one registry per hub instance so tests can run
 * several hubs in one process). Served at GET /metrics. `close()` stops the event-loop monitor.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'cairn_hub_' });
  const eventLoop = new EventLoopDelayWindow();
  return {
    registry,
    close: () => eventLoop.stop(),
    /** Device messages dropped on receipt, by topic kind and reason (bad_topic, too_large, not_json, too_deep, not_canonical, unknown_field, missing_field, wrong_type, out_of_range, schema; a module's own: telemetry's future_timestamp, too_old). */
    rejectedMessages: new Counter({
      name: 'cairn_hub_rejected_messages_total',
      help: 'Device MQTT messages dropped on receipt, by topic kind and reason',
      labelNames: ['kind', 'reason'] as const,
      registers: [registry],
    }),
    receivedMessages: new Counter({
      name: 'cairn_hub_received_messages_total',
      help: 'Device MQTT messages accepted, by topic kind',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    deniedMqtt: new Counter({
      name: 'cairn_hub_mqtt_denied_total',
      help: 'MQTT publishes and subscriptions refused by the broker access control, by action and reason',
      labelNames: ['action', 'reason'] as const,
      registers: [registry],
    }),
    connectedClients: new Gauge({ name: 'cairn_hub_mqtt_connected_clients', help: 'MQTT clients connected to the embedded broker', registers: [registry] }),
    blobChunksServed: new Counter({ name: 'cairn_hub_blob_chunks_served_total', help: 'Blob chunks sent to devices', registers: [registry] }),
    blobBytesServed: new Counter({ name: 'cairn_hub_blob_bytes_served_total', help: 'Bytes of blob frames (header and chunk) published to devices', registers: [registry] }),
    blobRequestsRefused: new Counter({
      name: 'cairn_hub_blob_requests_refused_total',
      help: 'Blob chunk requests refused, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    desiredPublished: new Counter({ name: 'cairn_hub_desired_published_total', help: 'Signed desired documents published', registers: [registry] }),
    maintenanceAlerts: new Counter({
      name: 'cairn_hub_maintenance_alerts_total',
      help: 'Maintenance alerts raised by devices, by predicted fault class',
      labelNames: ['fault'] as const,
      registers: [registry],
    }),
    loginFailures: new Counter({
      name: 'cairn_hub_login_failures_total',
      help: 'Console logins refused, by reason (bad_credentials, locked)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    accessDenied: new Counter({
      name: 'cairn_hub_access_denied_total',
      help: 'HTTP requests refused by the access check, by error code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    deviceRejections: new Counter({
      name: 'cairn_hub_device_rejections_total',
      help: 'Desired documents or bundles that devices reported rejecting, failing or rolling back, by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    telemetryStored: new Counter({ name: 'cairn_hub_telemetry_stored_total', help: 'Telemetry summaries stored (new (device, seq) pairs)', registers: [registry] }),
    telemetryDuplicates: new Counter({ name: 'cairn_hub_telemetry_duplicates_total', help: 'Telemetry summaries received again for a (device, seq) already stored (acknowledged, not stored twice)', registers: [registry] }),
    telemetryBatchSize: new Histogram({
      name: 'cairn_hub_telemetry_batch_size',
      help: 'Summaries per ingest transaction',
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000],
      registers: [registry],
    }),
    /** Broker receipt (the handler ran) → the batch committed, on the monotonic clock; the PUBACK follows right after. */
    telemetryIngestLag: new Histogram({
      name: 'cairn_hub_telemetry_ingest_lag_seconds',
      help: 'Telemetry ingest lag: from broker receipt to the commit of its batch',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    telemetryBatchFailures: new Counter({ name: 'cairn_hub_telemetry_batch_failures_total', help: 'Ingest transactions that failed (their devices were refused and resend)', registers: [registry] }),
    telemetryRawRows: new Gauge({ name: 'cairn_hub_telemetry_raw_rows', help: 'Raw telemetry summaries stored', registers: [registry] }),
    telemetryRetained: new Counter({
      name: 'cairn_hub_telemetry_retention_deleted_total',
      help: 'Rows deleted by the telemetry retention job, by table (raw, minute, hour)',
      labelNames: ['table'] as const,
      registers: [registry],
    }),
    rollouts: new Gauge({ name: 'cairn_hub_rollouts', help: 'Rollouts that are not finished, by state', labelNames: ['state'] as const, registers: [registry] }),
    rolloutTransitions: new Counter({
      name: 'cairn_hub_rollout_transitions_total',
      help: 'Rollout state transitions (started, stage_advanced, paused, completed, rolled_back…)',
      labelNames: ['kind'] as const,
      registers: [registry],
    }),
    rolloutBreaches: new Counter({
      name: 'cairn_hub_rollout_breaches_total',
      help: 'Rollout stages that tripped their breach policy, by cause (failure_threshold or a quality gate)',
      labelNames: ['cause'] as const,
      registers: [registry],
    }),
    /**
     * How late the event loop ran timers, over the last complete minute (the running one until a
     * first minute has passed). Every MQTT handler, SQLite write and HTTP request shares this loop:
     * a p99 in the hundreds of milliseconds means acknowledgements and the API are stalling.
     */
    eventLoopDelay: new Gauge({
      name: 'cairn_hub_event_loop_delay_seconds',
      help: 'Event-loop delay beyond the sampling interval over the last complete minute (perf_hooks.monitorEventLoopDelay), by quantile',
      labelNames: ['quantile'] as const,
      registers: [registry],
      collect() {
        const delay = eventLoop.quantiles();
        this.set({ quantile: '0.5' }, delay.p50);
        this.set({ quantile: '0.99' }, delay.p99);
      },
    }),
    /** Set at each scrape from the devices table (the MQTT client gauge also counts connections that never sent a birth). */
    devicesOnline: new Gauge({ name: 'cairn_hub_devices_online', help: 'Enrolled devices whose last presence message said online', registers: [registry] }),
    streamClients: new Gauge({ name: 'cairn_hub_stream_clients', help: 'Clients connected to the live stream (GET /api/v1/stream)', registers: [registry] }),
    streamEventsSent: new Counter({
      name: 'cairn_hub_stream_events_sent_total',
      help: 'Live-stream events written to clients (replays included), by event name',
      labelNames: ['event'] as const,
      registers: [registry],
    }),
    streamClientsDropped: new Counter({
      name: 'cairn_hub_stream_clients_dropped_total',
      help: 'Live-stream clients the hub disconnected, by reason (slow: more buffered than stream.clientMaxBufferedBytes)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    streamResets: new Counter({
      name: 'cairn_hub_stream_resets_total',
      help: 'Live-stream resumes answered with a reset event, by reason (too_old, unknown_id)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    alertsOpen: new Gauge({ name: 'cairn_hub_alerts_open', help: 'Unresolved alerts (open or acknowledged), by cause', labelNames: ['cause'] as const, registers: [registry] }),
    alertsOpened: new Counter({ name: 'cairn_hub_alerts_opened_total', help: 'Alerts opened, by cause (recurrences of an unresolved alert are not counted)', labelNames: ['cause'] as const, registers: [registry] }),
    workOrdersOpened: new Counter({ name: 'cairn_hub_work_orders_opened_total', help: 'Maintenance work orders opened', registers: [registry] }),
    webhookQueueDepth: new Gauge({ name: 'cairn_hub_webhook_queue_depth', help: 'Webhook deliveries waiting to be delivered (pending, including retries)', registers: [registry] }),
    webhookDeliveries: new Counter({
      name: 'cairn_hub_webhook_deliveries_total',
      help: 'Webhook delivery attempts by result (delivered; retry: failed, will try again; failed: gave up after maxAttempts or endpoint removed)',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
  };
}

/**
 * p50 and p99 of the event-loop delay over fixed one-minute windows. monitorEventLoopDelay
 * samples with a timer every RESOLUTION_MS and records the whole interval, so an idle loop
 * reads about RESOLUTION_MS: that interval is taken off, leaving the lateness alone.
 */
class EventLoopDelayWindow {
  private readonly monitor = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  private lastWindow: { p50: number; p99: number } | null = null;
  private readonly timer: NodeJS.Timeout;

  constructor() {
    this.monitor.enable();
    this.timer = setInterval(() => {
      this.lastWindow = this.read();
      this.monitor.reset();
    }, WINDOW_MS);
    this.timer.unref();
  }

  /** In seconds. */
  quantiles(): { p50: number; p99: number } {
    return this.lastWindow ?? this.read();
  }

  stop(): void {
    clearInterval(this.timer);
    this.monitor.disable();
  }

  private read(): { p50: number; p99: number } {
    if (this.monitor.count === 0) return { p50: 0, p99: 0 };
    const lateness = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS) / 1000;
    return { p50: lateness(this.monitor.percentile(50)), p99: lateness(this.monitor.percentile(99)) };
  }
}

const RESOLUTION_MS = 10;
const WINDOW_MS = 60_000;

export type HubMetrics = ReturnType<typeof createMetrics>;
