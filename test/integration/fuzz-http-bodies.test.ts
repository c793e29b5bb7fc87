/**
 * Malformed request bodies against every route the hub registers (`Hub.routes`), as admin, through
 * `app.inject()` (the whole fastify pipeline — access hook, content-type parsers, schema
 * validation, handlers, error handler — without a socket):
 *
 * - a table of malformed bodies for every route: bad JSON, an empty JSON body, the wrong content
 *   type, a body over the limit, `__proto__` keys, nesting thousands of levels deep, a number
 *   that overflows to Infinity, a lone UTF-16 surrogate;
 * - for every route with a JSON body schema (read from the hub's own OpenAPI document):
 *   missing fields, each field with a value of the wrong type, an unknown field where the object
 *   is closed, and fast-check bodies generated from the schema and then mutated.
 *
 * What must hold: no answer is a 5xx; every refusal is a 4xx with a code from the hub's catalogue
 * (`CAIRN_*`, hub/src/infra/errors.ts); a malformed body for a route that takes one is refused.
 * Path parameters name things that do not exist, so a body that happens to be valid changes
 * nothing (404) — the admin token, in particular, is never revoked.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { InjectOptions } from 'fastify';
import { startTestHub, type TestHub } from '../helpers/hub.js';
import { mutatedJson, nestedText } from '../helpers/fuzz.js';
import { buildDemoModel } from '@cairn/hub/training/demo-model.js';

const GENERATED_PER_ROUTE = 300;
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);
const PARAM_VALUES: Record<string, string> = { id: 'fuzz-missing', name: 'fuzz-missing', version: '9.9.9', username: 'fuzz-missing', '*': 'fuzz/missing' };

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  enum?: unknown[];
  default?: unknown;
  const?: unknown;
  anyOf?: JsonSchema[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  patternProperties?: Record<string, JsonSchema>;
}

/** Values that satisfy (most of) a JSON schema: the starting points of the mutations. */
function arbitraryOf(schema: JsonSchema): fc.Arbitrary<unknown> {
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (schema.anyOf) return fc.oneof(...schema.anyOf.map(arbitraryOf));
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  switch (type) {
    case 'object': {
      if (schema.patternProperties) {
        const [pattern, value] = Object.entries(schema.patternProperties)[0]!;
        return fc.dictionary(fc.stringMatching(new RegExp(pattern)), arbitraryOf(value), { maxKeys: 3 });
      }
      const props = Object.fromEntries(Object.entries(schema.properties ?? {}).map(([k, v]) => [k, arbitraryOf(v)]));
      return fc.record(props, { requiredKeys: (schema.required ?? []).filter((k) => k in props) });
    }
    case 'array':
      return fc.array(schema.items ? arbitraryOf(schema.items) : fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 });
    case 'string':
      return schema.pattern ? fc.stringMatching(new RegExp(schema.pattern)).filter((s) => s.length <= (schema.maxLength ?? Infinity)) : fc.string({ minLength: schema.minLength ?? 0, maxLength: Math.min(schema.maxLength ?? 20, 20) });
    case 'integer':
      return fc.integer({ min: Math.max(schema.minimum ?? -1000, -(2 ** 31)), max: Math.min(schema.maximum ?? 1000, 2 ** 31) });
    case 'number':
      return fc.double({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1000, noNaN: true });
    case 'boolean':
      return fc.boolean();
    case 'null':
      return fc.constant(null);
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** A value of another JSON type than the schema's. */
function wrongTypeFor(schema: JsonSchema): unknown {
  const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
  return type === 'string' ? 12345 : type === 'object' ? 'not an object' : type === 'array' ? { not: 'an array' } : 'not a number';
}

interface Route {
  method: string;
  pattern: string;
  url: string;
  bodySchema: JsonSchema | null;
  /** The content type the route's own parser takes (uploads stream octets). */
  octets: boolean;
}

async function routesOf(hub: TestHub): Promise<Route[]> {
  const openapi = (await hub.app.inject({ method: 'GET', url: '/docs/json', headers: { authorization: `Bearer ${hub.token}` } })).json() as {
    paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: JsonSchema }> } }>>;
  };
  return hub.routes
    .filter((r) => !r.startsWith('HEAD '))
    .map((r) => {
      const [method, pattern] = r.split(' ') as [string, string];
      const url = pattern.replace(/:([A-Za-z]+)|\*/g, (m, name: string | undefined) => PARAM_VALUES[name ?? '*'] ?? m);
      const content = openapi.paths[pattern.replace(/:([A-Za-z]+)/g, '{$1}')]?.[method.toLowerCase()]?.requestBody?.content ?? {};
      return { method, pattern, url, bodySchema: content['application/json']?.schema ?? null, octets: 'application/octet-stream' in content || pattern === '/api/v1/uploads' || pattern === '/api/v1/models' };
    });
}

const json = (text: string) => ({ headers: { 'content-type': 'application/json' }, payload: text });

/** Malformed bodies for any route: [name, content type, payload]. */
const MALFORMED: Array<[string, string, string | Buffer]> = [
  ['bad JSON', 'application/json', '{"name": '],
  ['an empty JSON body', 'application/json', ''],
  ['JSON that is a bare string', 'application/json', '"just a string"'],
  ['the wrong content type', 'text/plain', 'name=x'],
  ['an unknown content type', 'application/x-fuzz', '\u0000\u0001'],
  ['a body over the limit', 'application/json', `{"x":"${'a'.repeat(1024 * 1024 + 10)}"}`],
  ['a __proto__ key', 'application/json', '{"__proto__":{"role":"admin"},"name":"x"}'],
  ['nesting 5,000 levels deep', 'application/json', `{"name":${nestedText(5000)}}`],
  ['a number that overflows to Infinity', 'application/json', '{"name":"x","ttlSeconds":1e400,"labels":{"a":1e400}}'],
  ['a lone UTF-16 surrogate', 'application/json', '{"name":"\\ud800","username":"\\udc00x","role":"viewer","selector":"\\ud800"}'],
];

test('fuzz: malformed bodies on every route the hub registers are refused with a coded 4xx, never a 5xx', async (t) => {
  const hub = await startTestHub(t);
  const routes = await routesOf(hub);
  assert.ok(routes.filter((r) => r.bodySchema).length >= 8, 'the OpenAPI document names the body schemas');
  const failures = new Set<string>(); // generated cases that fail alike are reported once
  const send = async (route: Route, what: string, options: Omit<InjectOptions, 'method' | 'url'>): Promise<void> => {
    const answer = await hub.app.inject({ method: route.method as 'POST', url: route.url, ...options, headers: { authorization: `Bearer ${hub.token}`, 'x-cairn-csrf': '1', ...options.headers } });
    const body = answer.headers['content-type']?.toString().startsWith('application/json') ? (answer.json() as { code?: string }) : {};
    const where = `${route.method} ${route.pattern} with ${what}`;
    if (answer.statusCode >= 500) failures.add(`${where}: ${answer.statusCode} ${answer.body.slice(0, 200)}`);
    else if (answer.statusCode >= 400 && !body.code?.startsWith('CAIRN_')) failures.add(`${where}: ${answer.statusCode} without a CAIRN_ code (${answer.body.slice(0, 200)})`);
    else if (answer.statusCode < 400 && route.bodySchema && what !== 'a generated body') failures.add(`${where}: accepted with ${answer.statusCode}`);
  };

  for (const route of routes) {
    for (const [what, type, payload] of MALFORMED) {
      if (route.octets && type !== 'application/json') continue; // octets are the upload itself
      await send(route, what, { headers: { 'content-type': type }, payload });
    }
    if (!route.bodySchema) continue;
    const schema = route.bodySchema;
    const sample = fc.sample(arbitraryOf(schema), { numRuns: 1, seed: 1 })[0] as Record<string, unknown>;
    // A required property with a default may be left out; one without may not.
    const needed = (schema.required ?? []).filter((key) => schema.properties?.[key]?.default === undefined);
    if (needed.length > 0) await send(route, 'an empty object', json('{}'));
    await send(route, 'an array instead of an object', json('[]'));
    for (const [key, property] of Object.entries(schema.properties ?? {})) {
      await send(route, `a wrong type for ${key}`, json(JSON.stringify({ ...sample, [key]: wrongTypeFor(property) })));
    }
    for (const key of needed) {
      const { [key]: _missing, ...rest } = sample;
      await send(route, `no ${key}`, json(JSON.stringify(rest)));
    }
    if (schema.additionalProperties === false) await send(route, 'an unknown field', json(JSON.stringify({ ...sample, fuzzUnknown: 1 })));
    for (const bytes of fc.sample(mutatedJson(arbitraryOf(schema)), { numRuns: GENERATED_PER_ROUTE, seed: 11 })) {
      await send(route, 'a generated body', { headers: { 'content-type': 'application/json' }, payload: bytes });
    }
  }
  assert.deepEqual([...failures], []);
  // The admin token still works: nothing the fuzz sent revoked or demoted it.
  assert.equal((await hub.api('GET', '/api/v1/session')).status, 200);
});

test('regression: bodies canonical JSON cannot represent answer 400 CAIRN_BAD_JSON (a model published with a 3,000-level lineage failed as 500 when its manifest was signed; a lone surrogate in a token name was stored as U+FFFD)', async (t) => {
  const hub = await startTestHub(t);
  const post = (url: string, payload: string) => hub.app.inject({ method: 'POST', url, headers: { authorization: `Bearer ${hub.token}`, 'content-type': 'application/json' }, payload });
  const uploaded = await hub.api('POST', '/api/v1/uploads', buildDemoModel({ seed: 1 }).bytes);
  assert.equal(uploaded.status, 201);
  const cases: Array<[string, string]> = [
    ['/api/v1/models/publish', `{"name":"deep","version":"1.0.0","model":"${uploaded.body.digest}","sections":{"lineage":{"x":${nestedText(3000)}}}}`],
    ['/api/v1/tokens', '{"name":"\\ud800"}'],
    ['/api/v1/tokens', `{"name":"x","scopes":${nestedText(40)}}`],
  ];
  for (const [url, payload] of cases) {
    const answer = await post(url, payload);
    assert.deepEqual([answer.statusCode, answer.json().code], [400, 'CAIRN_BAD_JSON'], payload.slice(0, 60));
  }
  assert.equal((await post('/api/v1/tokens', '{"name":"\\ud83d\\udca5"}')).statusCode, 201, 'a surrogate pair is fine');
  assert.equal((await hub.api('GET', '/api/v1/models')).body.models.length, 0, 'nothing was published');
});

test('regression: a JSON body is not type-coerced ({"name": 12345} created a token named "12345"); query strings still are', async (t) => {
  const hub = await startTestHub(t);
  const answer = await hub.app.inject({ method: 'POST', url: '/api/v1/tokens', headers: { authorization: `Bearer ${hub.token}` }, payload: { name: 12345 } });
  assert.deepEqual([answer.statusCode, answer.json().code], [400, 'CAIRN_BAD_REQUEST']);
  assert.equal((await hub.api('GET', '/api/v1/audit?limit=5')).status, 200);
});

test("regression: fastify's own body refusals carry catalogue codes (they answered FST_ERR_CTP_* codes)", async (t) => {
  const hub = await startTestHub(t);
  const send = (type: string, payload: string) => hub.app.inject({ method: 'PUT', url: '/api/v1/devices/none/labels', headers: { authorization: `Bearer ${hub.token}`, 'content-type': type }, payload });
  const cases: Array<[string, string, number, string]> = [
    ['application/json', '{"labels":', 400, 'CAIRN_BAD_JSON'],
    ['application/json', '', 400, 'CAIRN_BAD_JSON'],
    ['text/plain', 'labels', 400, 'CAIRN_BAD_REQUEST'],
    ['application/x-fuzz', 'labels', 415, 'CAIRN_UNSUPPORTED_MEDIA_TYPE'],
    ['application/json', `{"labels":{"a":"${'b'.repeat(1024 * 1024)}"}}`, 413, 'CAIRN_PAYLOAD_TOO_LARGE'],
  ];
  for (const [type, payload, status, code] of cases) {
    const answer = await send(type, payload);
    assert.deepEqual([answer.statusCode, answer.json().code], [status, code], `${type} ${payload.slice(0, 20)}`);
  }
});
