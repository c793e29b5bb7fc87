/** The telemetry summary the monitoring benchmarks send and store: what an agent running the reference model with a drift reference sends every 10 s (19 features). */
import type { TelemetryT } from '@cairn/shared';

const FEATURES = ['rms_g', 'peak_g', 'crest_factor', 'kurtosis', 'skewness', 'band_0', 'band_1', 'band_2', 'band_3', 'band_4', 'band_5', 'band_6', 'band_7', 'spectral_centroid_hz', 'dominant_low_hz', 'harmonic_envelope_var', 'bearing_envelope_mod', 'temperature_c', 'temperature_present'];

export function sampleSummary(seq: number, ts: number): TelemetryT {
  const features: Record<string, number> = {};
  for (const [i, name] of FEATURES.entries()) features[name] = Math.round(((seq * 7 + i * 13) % 100) / 10) / 100;
  return {
    seq,
    ts,
    intervalMs: 10_000,
    inferences: 10 + (seq % 5),
    errors: seq % 97 === 0 ? 1 : 0,
    latencyMs: { p50: 1.2 + (seq % 10) / 10, p95: 3.4, p99: 4.1, max: 6.2 },
    rssMb: 180.5,
    cpuPct: 12.5 + (seq % 20),
    active: { name: 'pdm-vibration', version: '1.0.0', digest: 'b'.repeat(64), deploymentId: 'rollout-0001' },
    outbox: { depth: 0, dropped: 0 },
    drift: { windowMs: 600_000, samples: 60, predictionPsi: 0.03, maxFeaturePsi: 0.09, maxFeature: 'rms_g', features, status: 'ok' },
  };
}

