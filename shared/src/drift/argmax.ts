/**
 * The predicted class of model outputs: the index of the largest value of each row. The one
 * definition the hub (drift references, accuracy, quantization gate) and the agent (live drift)
 * share, so a reference's predicted-class shares and the device's live shares count alike.
 */

/** Index of the largest value of each `width`-wide row (the first on ties; -1 for a row with a NaN). */
export function argmax(values: ArrayLike<number>, rows: number, width: number): Int32Array {
  if (!Number.isInteger(width) || width < 1) throw new RangeError(`width must be a positive integer, got ${width}`);
  if (values.length !== rows * width) throw new RangeError(`values has ${values.length} entries, expected ${rows}×${width}`);
  const out = new Int32Array(rows);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    let bestValue = -Infinity;
    for (let j = 0; j < width; j++) {
      const v = values[r * width + j]!;
      if (Number.isNaN(v)) {
        best = -1;
        break;
      }
      if (v > bestValue) {
        bestValue = v;
        best = j;
      }
    }
    out[r] = best;
  }
  return out;
}
