/**
 * Input records (agent/src/components/sources/records.ts): each kind parses, each malformed
 * record is refused with its own reason, and feeds are checked against the model's inputs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRecord, recordFeeds, RecordError, type SourceRecord } from '@cairn/agent/components/sources/records.js';
import type { ServedModel } from '@cairn/agent/components/active-model.js';
import { createDeviceSignal, extractFeatures, FEATURE_COUNT, FEATURE_PIPELINE, type ManifestT } from '@cairn/shared';

/** A served model as the records module sees it: its input signature and manifest sections. */
function served(dims: Array<number | string>, features?: Record<string, unknown>): ServedModel {
  const inputs = [{ name: 'features', type: 'float32', dims }];
  const manifest = { name: 'm', version: '1.0.0', inputs, ...(features ? { features } : {}) } as unknown as ManifestT;
  return { session: { inputs } as unknown as ServedModel['session'], bundle: { manifest, digest: 'd'.repeat(64), deploymentId: 'dep' } };
}

function reasonOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof RecordError, `expected a RecordError, got ${String(err)}`);
    return err.reason;
  }
  assert.fail('expected a RecordError');
}

const vibrationModel = served(['batch', FEATURE_COUNT], { name: FEATURE_PIPELINE.name, version: FEATURE_PIPELINE.version });

test('each record kind parses, with its optional timestamp', () => {
  assert.deepEqual(parseRecord('{"features":[1,2],"ts":5}'), { kind: 'features', features: [1, 2], ts: 5 });
  assert.deepEqual(parseRecord('{"inputs":{"x":{"dims":[1,1],"data":[3]}}}'), { kind: 'tensors', inputs: { x: { dims: [1, 1], data: [3] } } });
  assert.equal(parseRecord('{"samples":[0.1],"sampleRateHz":12800,"temperatureC":null}').kind, 'vibration');
});

test('malformed records are refused by reason', () => {
  const cases: Array<[string, string]> = [
    ['{"features": [1,', 'bad_json'],
    ['42', 'unknown_format'],
    ['null', 'unknown_format'],
    ['{"values":[1]}', 'unknown_format'],
    ['{"features":[]}', 'bad_record'],
    ['{"features":["a"]}', 'bad_record'],
    ['{"features":[1],"ts":-1}', 'bad_record'],
    ['{"samples":[1],"sampleRateHz":0}', 'bad_record'],
    ['{"inputs":{"x":{"dims":[1],"data":[1],"extra":1}}}', 'bad_record'],
  ];
  for (const [text, reason] of cases) assert.equal(reasonOf(() => parseRecord(text)), reason, text);
});

test('feeds are checked against the model: features width, tensor names and shapes', () => {
  const model = served(['batch', 3]);
  const feeds = recordFeeds({ kind: 'features', features: [1, 2, 3] }, model);
  assert.deepEqual(feeds.features!.dims, [1, 3]);
  assert.deepEqual(Array.from(feeds.features!.data), [1, 2, 3]);
  const bad: SourceRecord[] = [
    { kind: 'features', features: [1, 2] },
    { kind: 'tensors', inputs: { other: { dims: [1, 3], data: [1, 2, 3] } } },
    { kind: 'tensors', inputs: { features: { dims: [1, 3], data: [1, 2] } } },
    { kind: 'tensors', inputs: { features: { dims: [3], data: [1, 2, 3] } } },
    { kind: 'tensors', inputs: { features: { dims: [0, 3], data: [] } } },
  ];
  for (const record of bad) assert.equal(reasonOf(() => recordFeeds(record, model)), 'bad_shape', JSON.stringify(record));
});

test('raw vibration windows become the shared pipeline features, only for a model that takes them', () => {
  const signal = createDeviceSignal({ machine: 'pump-1800', seed: 3 });
  const w = signal.windowAt(1000);
  const record: SourceRecord = { kind: 'vibration', samples: Array.from(w.samples), sampleRateHz: signal.sampleRateHz, temperatureC: w.temperatureC };
  const feeds = recordFeeds(record, vibrationModel);
  assert.deepEqual(Array.from(feeds.features!.data), Array.from(extractFeatures(w.samples, { sampleRateHz: signal.sampleRateHz, temperatureC: w.temperatureC })));
  assert.equal(reasonOf(() => recordFeeds(record, served(['batch', FEATURE_COUNT]))), 'model_mismatch', 'a model without the feature pipeline');
  assert.equal(reasonOf(() => recordFeeds({ ...record, sampleRateHz: 8000 }, vibrationModel)), 'model_mismatch', 'the wrong sample rate');
  assert.equal(reasonOf(() => recordFeeds({ ...record, samples: record.samples.slice(1) }, vibrationModel)), 'model_mismatch', 'a short window');
});
