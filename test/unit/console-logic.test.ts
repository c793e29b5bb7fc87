/**
 * The console's logic that lives in plain modules (console/src/lib, compiled by
 * console/tsconfig.lib.json): selector validation as typed, the fleet filters and sort, the
 * virtual window, routes, the series computed from raw telemetry, the rollout form, deployment
 * history, formatting.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { Alert, Device, DeviceEvent, RawTelemetry } from '@cairn/console/lib/api.js';
import { ApiError, query, unlessRouteMissing } from '@cairn/console/lib/api.js';
import { checkSelector } from '@cairn/console/lib/selector-check.js';
import { alertBadges, EMPTY_FILTER, filterDevices, NO_MODEL, sortDevices, versionsOf } from '@cairn/console/lib/device-filter.js';
import { rowWindow } from '@cairn/console/lib/virtual-rows.js';
import { parseRoute, routeHref, routeKey, section, type Route } from '@cairn/console/lib/routes.js';
import { chartColumns, countValues, seriesFromRaw } from '@cairn/console/lib/series.js';
import { buildRolloutRequest, emptyForm } from '@cairn/console/lib/rollout-form.js';
import { deploymentHistory } from '@cairn/console/lib/deployment-history.js';
import { actionsFor, stopReasonText, waitingText } from '@cairn/console/lib/rollout-status.js';
import { canOperate, canReadAudit } from '@cairn/console/lib/roles.js';
import { bytes, duration, percent, relativeTime, words } from '@cairn/console/lib/format.js';
import { parseSelector } from '@cairn/shared/selector/label-selector.js';

const device = (id: string, labels: Record<string, string>, extra: Partial<Device> = {}): Device => ({
  id,
  online: true,
  lastSeenAt: null,
  agentVersion: null,
  labels,
  active: null,
  deployment: null,
  ...extra,
});

test('selector input: valid selectors parse as the hub parses them; a half-typed one names its position', () => {
  const ok = checkSelector('site=plant-3,line in (a,b)');
  assert.ok(ok.ok);
  assert.deepEqual(ok.selector, parseSelector('site=plant-3,line in (a,b)'));
  assert.deepEqual(checkSelector('  '), { ok: true, selector: [], empty: true });
  for (const partial of ['site=plant-3,line in (', '=x', '!', 'a b']) {
    const bad = checkSelector(partial);
    assert.equal(bad.ok, false, partial);
    if (!bad.ok) {
      assert.match(bad.message, /position \d+/);
      assert.ok(bad.position >= 0 && bad.position <= partial.length);
    }
  }
});

test('selector input never throws, whatever is typed', () => {
  fc.assert(fc.property(fc.string({ maxLength: 80 }), (text) => typeof checkSelector(text).ok === 'boolean'));
});

test('fleet filter: selector, status, version and id combine; the selector matches like the hub', () => {
  const model = { name: 'pdm', version: '1.0.0', digest: 'sha256:00', deploymentId: 'd' };
  const devices = [
    device('a-1', { site: 'plant-3', line: 'a' }, { active: model }),
    device('a-2', { site: 'plant-3', line: 'c' }, { online: false }),
    device('b-1', { site: 'plant-1' }, { active: model, online: false }),
  ];
  const selector = parseSelector('site=plant-3,line in (a,b)');
  assert.deepEqual(filterDevices(devices, { ...EMPTY_FILTER, selector }).map((d) => d.id), ['a-1']);
  assert.deepEqual(filterDevices(devices, { ...EMPTY_FILTER, status: 'offline' }).map((d) => d.id), ['a-2', 'b-1']);
  assert.deepEqual(filterDevices(devices, { ...EMPTY_FILTER, version: 'pdm@1.0.0', status: 'offline' }).map((d) => d.id), ['b-1']);
  assert.deepEqual(filterDevices(devices, { ...EMPTY_FILTER, version: NO_MODEL }).map((d) => d.id), ['a-2']);
  assert.deepEqual(filterDevices(devices, { ...EMPTY_FILTER, text: 'A-' }).map((d) => d.id), ['a-1', 'a-2']);
  assert.equal(filterDevices(devices, EMPTY_FILTER), devices, 'no filter: the same array, no copy');
  assert.deepEqual(versionsOf(devices), ['pdm@1.0.0']);
  // `!=` and notin select devices without the key, as in Kubernetes and on the hub.
  assert.deepEqual(filterDevices(devices, { ...EMPTY_FILTER, selector: parseSelector('line!=a') }).map((d) => d.id), ['a-2', 'b-1']);
});

test('fleet sort: numeric ids, stable ties, descending', () => {
  const devices = [device('dev-10', {}), device('dev-9', {}, { online: false }), device('dev-2', {})];
  assert.deepEqual(sortDevices(devices).map((d) => d.id), ['dev-2', 'dev-9', 'dev-10']);
  assert.deepEqual(sortDevices(devices, { key: 'id', descending: true }).map((d) => d.id), ['dev-10', 'dev-9', 'dev-2']);
  assert.deepEqual(sortDevices(devices, { key: 'status', descending: false }).map((d) => d.id), ['dev-2', 'dev-10', 'dev-9']);
});

test('virtual rows: the window covers the viewport, spacers keep the total height', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 0, max: 2_000_000 }), fc.integer({ min: 0, max: 2000 }), (count, scrollTop, height) => {
      const w = rowWindow(count, 48, scrollTop, height);
      assert.ok(w.start <= w.end && w.end <= count);
      assert.equal(w.padTop + (w.end - w.start) * 48 + w.padBottom, count * 48);
      const firstVisible = Math.floor(scrollTop / 48);
      if (firstVisible < count) assert.ok(w.start <= firstVisible && w.end >= Math.min(count, firstVisible + Math.ceil(height / 48)));
    }),
  );
  assert.deepEqual(rowWindow(0, 48, 0, 600), { start: 0, end: 0, padTop: 0, padBottom: 0 });
});

test('routes: parse and href are inverses, ids with dots and slashes survive', () => {
  const routes: Route[] = [
    { page: 'fleet' },
    { page: 'device', id: 'press.7' },
    { page: 'device', id: 'a/b c', range: '6h', chart: 'drift' },
    { page: 'models' },
    { page: 'model', name: 'pdm', version: '1.2.0-rc.1' },
    { page: 'rollouts' },
    { page: 'rollout-new' },
    { page: 'rollout', id: 'ro_abc' },
    { page: 'alerts' },
    { page: 'work-orders' },
    { page: 'audit' },
  ];
  for (const route of routes) assert.deepEqual(parseRoute(routeHref(route)), route, routeHref(route));
  assert.deepEqual(parseRoute(''), { page: 'fleet' });
  assert.equal(parseRoute('#/nope/x').page, 'not-found');
  assert.equal(parseRoute('#/devices/%E0%A4%A').page, 'not-found', 'a malformed escape is not a crash');
  assert.equal(routeKey({ page: 'device', id: 'x', range: '6h' }), routeKey({ page: 'device', id: 'x' }));
  assert.equal(section({ page: 'rollout', id: 'x' }), 'rollouts');
  fc.assert(fc.property(fc.string({ minLength: 1, maxLength: 40 }), (id) => assert.deepEqual(parseRoute(routeHref({ page: 'device', id })), { page: 'device', id })));
});

test('series from raw telemetry: rates per second, gaps as null, sorted, in range', () => {
  const raw = (seq: number, ts: number, extra: Partial<RawTelemetry> = {}): RawTelemetry => ({
    seq,
    ts,
    intervalMs: 10_000,
    inferences: 50,
    errors: 1,
    latencyMs: { p50: 2, p95: 5, p99: 6, max: 9 },
    rssMb: 100,
    cpuPct: 12,
    active: null,
    ...extra,
  });
  const series = seriesFromRaw([raw(2, 20_000, { latencyMs: null }), raw(1, 10_000, { drift: { predictionPsi: 0.3, maxFeaturePsi: 0.5, status: 'alert' } }), raw(3, 99_000)], 0, 50_000);
  assert.equal(series.source, 'raw');
  assert.deepEqual(series.points.map((p) => p.t), [10_000, 20_000]);
  assert.equal(series.points[0]!.inferenceRate, 5);
  assert.equal(series.points[0]!.errorRate, 0.1);
  assert.equal(series.points[0]!.predictionPsi, 0.3);
  assert.equal(series.points[1]!.latencyP95Ms, null);
  assert.deepEqual(chartColumns(series.points, ['latencyP95Ms', 'predictionPsi']), [[10, 20], [5, null], [0.3, null]]);
  assert.equal(countValues(series.points, ['predictionPsi']), 1);
});

test('rollout form: defaults make a valid request; each bad field is named', () => {
  const form = emptyForm();
  assert.deepEqual(buildRolloutRequest(form), { ok: false, field: 'model', message: 'choose a model version' });
  form.model = 'pdm@1.0.0';
  form.selector = ' site=plant-1 ';
  const ok = buildRolloutRequest(form);
  assert.ok(ok.ok);
  assert.deepEqual(ok.request, {
    model: 'pdm@1.0.0',
    selector: 'site=plant-1',
    breachPolicy: 'pause',
    stages: ['10%', '50%', '100%'].map((size) => ({ size, successThreshold: 95, failureThreshold: 5 })),
  });
  form.stages[0]!.size = '1';
  form.stages[0]!.bake = '10m';
  form.gates.driftPsi = '0.2';
  form.window = { cron: '0 2 * * *', duration: '2h', timezone: '' };
  const full = buildRolloutRequest(form);
  assert.ok(full.ok);
  assert.deepEqual(full.request.stages[0], { size: 1, successThreshold: 95, failureThreshold: 5, bake: '10m', gates: { driftPsi: 0.2 } });
  assert.deepEqual(full.request.window, { cron: '0 2 * * *', duration: '2h' });
  for (const [mutate, field] of [
    [(f: typeof form) => (f.stages[1]!.size = 'half'), 'stages[1].size'],
    [(f: typeof form) => (f.stages[2]!.failureThreshold = '120'), 'stages[2].failureThreshold'],
    [(f: typeof form) => (f.gates.latencyP95Ratio = '-1'), 'gates.latencyP95Ratio'],
    [(f: typeof form) => (f.window.duration = 'soon'), 'window.duration'],
    [(f: typeof form) => (f.devicesPerMinute = '0'), 'rateLimit'],
  ] as const) {
    const copy = structuredClone(form);
    mutate(copy);
    const result = buildRolloutRequest(copy);
    assert.equal(result.ok ? null : result.field, field);
  }
});

test('deployment history: one entry per deployment, phases in order, the failure reason kept', () => {
  const event = (ts: number, deploymentId: string, phase: DeviceEvent['phase'], reason?: string): DeviceEvent => ({ eventId: `e${ts}xxxxxxx`, ts, type: 'deployment', deploymentId, phase, ...(reason ? { reason } : {}) });
  const history = deploymentHistory([event(5, 'd2', 'rolled_back', 'health_error_rate'), event(1, 'd1', 'received'), event(2, 'd1', 'committed'), event(3, 'd2', 'received'), event(4, 'd2', 'trial')]);
  assert.deepEqual(history.map((h) => [h.deploymentId, h.final, h.reason]), [['d2', 'rolled_back', 'health_error_rate'], ['d1', 'committed', null]]);
  assert.deepEqual(history[0]!.phases.map((p) => p.phase), ['received', 'trial', 'rolled_back']);
});

test('roles and rollout actions: viewers act on nothing; actions follow the engine states', () => {
  assert.equal(canOperate('viewer'), false);
  assert.equal(canOperate('operator'), true);
  assert.equal(canOperate(undefined), false);
  assert.equal(canReadAudit('admin'), true);
  assert.deepEqual(actionsFor('running'), ['pause', 'abort', 'rollback']);
  assert.deepEqual(actionsFor('paused'), ['resume', 'abort', 'rollback']);
  assert.deepEqual(actionsFor('rolled_back'), []);
});

test('formatting helpers', () => {
  assert.equal(bytes(812), '812 B');
  assert.equal(bytes(14_540), '14 KiB');
  assert.equal(bytes(3_250_000), '3.1 MiB');
  assert.equal(percent(0.4213), '42 %');
  assert.equal(percent(97.5, 1, true), '97.5 %');
  assert.equal(percent(null), '–');
  assert.equal(duration(90_000), '1.5 min');
  assert.equal(duration(3_600_000), '1 h');
  assert.equal(duration(0), '0');
  assert.equal(words('rolled_back'), 'Rolled back');
  assert.equal(relativeTime(1000, 61_000), '1 min ago');
  assert.equal(query({ a: 1, b: undefined, c: '', d: 'x y' }), '?a=1&d=x+y');
  assert.equal(query({}), '');
});

test('a route the hub does not have yet reads as null; any other failure still throws', async () => {
  assert.equal(await unlessRouteMissing(Promise.reject(new ApiError(404, 'CAIRN_NOT_FOUND', 'no route for GET /api/v1/fleet/summary'))), null);
  assert.deepEqual(await unlessRouteMissing(Promise.resolve({ devices: 1 })), { devices: 1 });
  await assert.rejects(unlessRouteMissing(Promise.reject(new ApiError(404, 'CAIRN_DEVICE_NOT_FOUND', 'no device x'))), /no device x/);
  await assert.rejects(unlessRouteMissing(Promise.reject(new ApiError(500, 'CAIRN_INTERNAL', 'boom'))), /boom/);
});

test('rollout stop and waiting reasons read as sentences', () => {
  assert.equal(stopReasonText({ kind: 'operator', actor: 'user:ann', stage: 0 }, 'paused'), 'Paused by user:ann at stage 1.');
  assert.equal(stopReasonText({ kind: 'breach', stage: 1, cause: 'failure_threshold', detail: { failureShare: 50 } }, 'rolled_back'), 'Rolled back at stage 2: the failure threshold was exceeded ({"failureShare":50}).');
  assert.match(stopReasonText({ kind: 'breach', stage: 0, cause: 'driftPsi' }, 'paused'), /the drift PSI gate was breached/);
  assert.equal(stopReasonText(null, 'running'), '');
  assert.equal(waitingText({ reason: 'rate_limited', perMinute: 5 }), 'Rate limited to 5 devices per minute.');
  assert.match(waitingText({ reason: 'approval_required', devices: 9, canary: 1 }), /not approved/);
});

test('alert badges: unresolved alerts per device; the attention filter uses them', () => {
  const alert = (id: string, deviceId: string, cause: Alert['cause'], state: Alert['state'], severity: Alert['severity'] = 'warning') =>
    ({ id, deviceId, cause, state, severity }) as Alert;
  const badges = alertBadges([alert('1', 'a', 'drift', 'open'), alert('2', 'a', 'offline', 'acknowledged', 'critical'), alert('3', 'b', 'offline', 'open'), alert('4', 'c', 'drift', 'resolved')]);
  assert.deepEqual(Object.fromEntries(badges), { a: { count: 2, drift: true, critical: true }, b: { count: 1, drift: false, critical: false } });
  const devices = ['a', 'b', 'c'].map((id) => device(id, {}));
  assert.deepEqual(filterDevices(devices, { ...EMPTY_FILTER, attention: 'alerting' }, badges).map((d) => d.id), ['a', 'b']);
  assert.deepEqual(filterDevices(devices, { ...EMPTY_FILTER, attention: 'drifting' }, badges).map((d) => d.id), ['a']);
});
