/** The packed per-feature PSI map gives back exactly the object it was given, keys in order. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeFeaturePsi, encodeFeaturePsi } from '@cairn/hub/modules/telemetry/feature-psi-codec.js';

const roundTrip = (features: Record<string, number>) => {
  const { names, values } = encodeFeaturePsi(features);
  return { decoded: decodeFeaturePsi(names, values), bytes: values.length };
};

test('PSI on the 4-decimal grid packs into 2 bytes a feature (up to 6.5535) or 4; anything else into 8; all decode exactly', () => {
  const small = { rms_g: 0.0123, band_0: 0, band_1: 0.0001, band_2: 6.5535 };
  assert.deepEqual(roundTrip(small), { decoded: small, bytes: 1 + 4 * 2 });
  const onGrid = { rms_g: 0.0123, kurtosis: 100, band_0: 0, band_1: 0.0001 };
  assert.deepEqual(roundTrip(onGrid), { decoded: onGrid, bytes: 1 + 4 * 4 });
  const offGrid = { rms_g: 0.0123, band_3: 1 / 3 };
  assert.deepEqual(roundTrip(offGrid), { decoded: offGrid, bytes: 1 + 2 * 8 });
  assert.deepEqual(roundTrip({}), { decoded: {}, bytes: 1 });
});

test('property: any map of PSI values (0..100) round-trips exactly with its key order', () => {
  const psi = fc.oneof(fc.integer({ min: 0, max: 1_000_000 }).map((n) => n / 10_000), fc.double({ min: 0, max: 100, noNaN: true }));
  fc.assert(
    fc.property(fc.dictionary(fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,20}$/), psi, { maxKeys: 40 }), (features) => {
      const { decoded } = roundTrip(features);
      assert.deepEqual(Object.entries(decoded), Object.entries(features));
    }),
    { numRuns: 2000 },
  );
});
