/**
 * Prometheus metrics of the hub (prom-client, one registry per hub instance so tests can run
 * several hubs in one process). Served at GET /metrics.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'cairn_hub_' });
  return {
    registry,
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
  };
}

export type HubMetrics = ReturnType<typeof createMetrics>;
