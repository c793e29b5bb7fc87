/**
 * Compact storage of a summary's per-feature PSI map (`drift.features`), the largest part of a
 * summary: as JSON, 19 features cost about 420 bytes a row, most of it the names repeated in
 * every summary. Stored instead as the id of the ordered name list (`telemetry_feature_sets`,
 * the same few lists for a whole fleet) plus the values in that order:
 *
 *   byte 0 = 2: u16 little-endian of value × 10⁴ each, when every value is on the 10⁻⁴ grid (the
 *               agent rounds PSI to 4 decimals) and at most 6.5535 (PSI above 0.25 is already
 *               major drift): 2 bytes a feature;
 *   byte 0 = 4: u32 likewise, for grid values up to 100 (the schema's bound): 4 bytes a feature;
 *   byte 0 = 8: float64 little-endian each, for any value that is not on the 10⁻⁴ grid.
 *
 * Decoding gives back the same object, keys in the same order.
 */
const SMALL = 2;
const SCALED = 4;
const FLOAT = 8;
const SCALE = 10_000;

const onGrid = (v: number): boolean => Math.round(v * SCALE) / SCALE === v && v * SCALE <= 0xffff_ffff;

/** The narrowest width that holds every value exactly. One pass, no intermediate arrays: it runs for every stored summary. */
function widthOf(features: Record<string, number>): number {
  let width = SMALL;
  for (const k in features) {
    const v = features[k]!;
    if (!onGrid(v)) return FLOAT;
    if (v * SCALE > 0xffff) width = SCALED;
  }
  return width;
}

/** `names`: the map's keys in order (the repository stores each distinct list once). */
export function encodeFeaturePsi(features: Record<string, number>): { names: readonly string[]; values: Buffer } {
  const keys = Object.keys(features);
  const width = widthOf(features);
  const out = Buffer.allocUnsafe(1 + keys.length * width);
  out[0] = width;
  let at = 1;
  for (const k of keys) {
    const v = features[k]!;
    if (width === SMALL) out.writeUInt16LE(Math.round(v * SCALE), at);
    else if (width === SCALED) out.writeUInt32LE(Math.round(v * SCALE), at);
    else out.writeDoubleLE(v, at);
    at += width;
  }
  return { names: keys, values: out };
}

export function decodeFeaturePsi(names: readonly string[], values: Buffer): Record<string, number> {
  const features: Record<string, number> = {};
  const width = values[0]!;
  names.forEach((name, i) => {
    const at = 1 + i * width;
    features[name] = width === SMALL ? values.readUInt16LE(at) / SCALE : width === SCALED ? values.readUInt32LE(at) / SCALE : values.readDoubleLE(at);
  });
  return features;
}
