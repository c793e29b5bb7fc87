/**
 * Compact storage of a summary's per-feature PSI map (`drift.features`), the largest part of a
 * summary: as JSON, 19 features cost about 420 bytes a row, most of it the names repeated in
 * every summary. Stored instead as the id of the ordered name list (`telemetry_feature_sets`,
 * the same few lists for a whole fleet) plus the values in that order:
 *
 *   byte 0 = 4: u32 little-endian of value × 10⁴ each (the agent rounds PSI to 4 decimals and
 *               PSI is at most 100, so this is exact: 4 bytes a feature);
 *   byte 0 = 8: float64 little-endian each, for any value that is not on the 10⁻⁴ grid.
 *
 * Decoding gives back the same object, keys in the same order.
 */
const SCALED = 4;
const FLOAT = 8;
const SCALE = 10_000;

const onGrid = (v: number): boolean => Math.round(v * SCALE) / SCALE === v && v * SCALE <= 0xffff_ffff;

export function encodeFeaturePsi(features: Record<string, number>): { names: string; values: Buffer } {
  const keys = Object.keys(features);
  const values = keys.map((k) => features[k]!);
  const scaled = values.every(onGrid);
  const out = Buffer.allocUnsafe(1 + values.length * (scaled ? 4 : 8));
  out[0] = scaled ? SCALED : FLOAT;
  values.forEach((v, i) => (scaled ? out.writeUInt32LE(Math.round(v * SCALE), 1 + i * 4) : out.writeDoubleLE(v, 1 + i * 8)));
  return { names: JSON.stringify(keys), values: out };
}

export function decodeFeaturePsi(names: readonly string[], values: Buffer): Record<string, number> {
  const features: Record<string, number> = {};
  const scaled = values[0] === SCALED;
  names.forEach((name, i) => {
    features[name] = scaled ? values.readUInt32LE(1 + i * 4) / SCALE : values.readDoubleLE(1 + i * 8);
  });
  return features;
}
