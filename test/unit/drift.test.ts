import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { referenceHistogram, binCounts, binOf, psi, buildDriftReference, gaussianArray, mulberry32 } from '@cairn/shared';

test('quantile bins give the reference equal shares, and out-of-range values land in the end bins', () => {
  const values = Float64Array.from({ length: 1000 }, (_, i) => i);
  const h = referenceHistogram(values, 10);
  assert.equal(h.edges.length, 9);
  for (const share of h.shares) assert.ok(Math.abs(share - 0.1) < 0.002, String(share));
  assert.equal(binOf(h.edges, -1e9), 0);
  assert.equal(binOf(h.edges, 1e9), 9);
  assert.deepEqual(binCounts(h.edges, [-5, 5000, Number.NaN]), [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
});

test('a discrete feature collapses repeated quantiles into fewer bins', () => {
  const h = referenceHistogram([0, 0, 0, 0, 0, 0, 0, 1, 1, 2], 10);
  assert.deepEqual(h.edges, [1, 2]);
  assert.deepEqual(h.shares, [0.7, 0.2, 0.1]);
});

test('PSI is ~0 for the same distribution and grows with the shift', () => {
  const ref = gaussianArray(mulberry32(1), 20_000);
  const h = referenceHistogram(ref);
  const same = gaussianArray(mulberry32(2), 20_000);
  const shifted = (delta: number) => gaussianArray(mulberry32(3), 20_000).map((v) => v + delta);
  const psiSame = psi(h.shares, binCounts(h.edges, same));
  const small = psi(h.shares, binCounts(h.edges, shifted(0.2)));
  const large = psi(h.shares, binCounts(h.edges, shifted(1)));
  assert.ok(psiSame < 0.01, `same: ${psiSame}`);
  assert.ok(small > psiSame && small < 0.1, `0.2σ: ${small}`);
  assert.ok(large > 0.25, `1σ: ${large}`);
  // A live window entirely outside the reference range: empty bins floored, PSI large but finite.
  const outside = psi(h.shares, binCounts(h.edges, new Float64Array(100).fill(50)));
  assert.ok(Number.isFinite(outside) && outside > 1, String(outside));
  assert.equal(psi(h.shares, new Array(h.shares.length).fill(0)), 0);
  assert.throws(() => psi([0.5, 0.5], [1, 2, 3]), /bin counts differ/);
});

test('PSI is finite and non-negative for any counts', () => {
  fc.assert(
    fc.property(fc.array(fc.nat(1000), { minLength: 2, maxLength: 12 }), fc.array(fc.nat(1000), { minLength: 2, maxLength: 12 }), (a, b) => {
      const n = Math.min(a.length, b.length);
      const ta = a.slice(0, n).reduce((x, y) => x + y, 0);
      fc.pre(ta > 0);
      const shares = a.slice(0, n).map((c) => c / ta);
      const value = psi(shares, b.slice(0, n));
      assert.ok(value >= -1e-12 && Number.isFinite(value));
    }),
    { numRuns: 2000 },
  );
});

test('a drift reference holds one histogram per feature and the predicted class shares', () => {
  const rng = mulberry32(9);
  const features = gaussianArray(rng, 300 * 3);
  const predictions = Int32Array.from({ length: 300 }, (_, i) => (i % 3 === 0 ? 1 : 0));
  const ref = buildDriftReference({ features, featureCount: 3, featureNames: ['rms', 'peak', 'kurtosis'], predictedClasses: predictions, classes: ['healthy', 'fault'] });
  assert.equal(ref.count, 300);
  assert.deepEqual(ref.features.map((f) => f.name), ['rms', 'peak', 'kurtosis']);
  assert.deepEqual(ref.predictions.shares, [200 / 300, 100 / 300]);
  assert.ok(ref.features.every((f) => f.edges.length === 9 && f.shares.length === 10));
  assert.deepEqual(JSON.parse(JSON.stringify(ref)), ref, 'JSON-safe for the manifest');
  assert.throws(() => buildDriftReference({ features, featureCount: 7, featureNames: ['a', 'b', 'c', 'd', 'e', 'f', 'g'], predictedClasses: predictions, classes: ['x'] }), /whole number/);
  assert.throws(() => buildDriftReference({ features, featureCount: 3, featureNames: ['a', 'b', 'c'], predictedClasses: predictions, classes: ['only'] }), /outside/);
});
