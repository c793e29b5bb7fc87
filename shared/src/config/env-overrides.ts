/**
 * Environment overrides derived from a configuration schema — the one way both the hub and the
 * agent read settings from the environment. Every property path of the schema has a variable:
 * the prefix, then each property name in SCREAMING_SNAKE_CASE, joined with `_`
 * (`http.port` with prefix CAIRN → `CAIRN_HTTP_PORT`; `api.port` with CAIRN_AGENT →
 * `CAIRN_AGENT_API_PORT`). Values are coerced as the schema expects: numbers and booleans
 * parsed, objects as JSON, a union's literal by its text, strings verbatim. A value that cannot
 * be coerced is reported as a problem, named by its variable.
 */
import type { TSchema } from 'typebox';

/** `(CAIRN_AGENT, [api, port])` → `CAIRN_AGENT_API_PORT`. */
export function envName(prefix: string, path: string[]): string {
  return [prefix, ...path.map((p) => p.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase())].join('_');
}

export function applyEnvOverrides(schema: TSchema, prefix: string, target: Record<string, unknown>, env: NodeJS.ProcessEnv, problems: string[]): void {
  for (const { path, schema: leaf } of schemaPaths(schema, [])) {
    const name = envName(prefix, path);
    const raw = env[name];
    if (raw === undefined) continue;
    const coerced = coerce(leaf, raw);
    if (!coerced.ok) {
      problems.push(`${name}: ${coerced.message}`);
      continue;
    }
    setPath(target, path, coerced.value);
  }
}

interface SchemaPath {
  path: string[];
  schema: TSchema;
}

/** Every property path in the schema, objects included (so `CAIRN_AGENT_LABELS` and `CAIRN_AGENT_API` exist). */
function schemaPaths(schema: TSchema, prefix: string[]): SchemaPath[] {
  const out: SchemaPath[] = [];
  const seen = new Set<string>();
  for (const object of objectVariants(schema)) {
    for (const [key, child] of Object.entries(object.properties as Record<string, TSchema>)) {
      const path = [...prefix, key];
      const id = path.join('.');
      if (!seen.has(id)) {
        seen.add(id);
        out.push({ path, schema: child });
      }
      for (const nested of schemaPaths(child, path)) {
        const nestedId = nested.path.join('.');
        if (!seen.has(nestedId)) {
          seen.add(nestedId);
          out.push(nested);
        }
      }
    }
  }
  return out;
}

function objectVariants(schema: TSchema): Array<TSchema & { properties: object }> {
  const s = schema as { type?: unknown; properties?: unknown; anyOf?: TSchema[] };
  if (s.type === 'object' && isPlainObject(s.properties)) return [schema as TSchema & { properties: object }];
  if (Array.isArray(s.anyOf)) return s.anyOf.flatMap(objectVariants);
  return [];
}

type Coerced = { ok: true; value: unknown } | { ok: false; message: string };

function coerce(schema: TSchema, raw: string): Coerced {
  const s = schema as { type?: unknown; const?: unknown; anyOf?: TSchema[] };
  if (Array.isArray(s.anyOf)) {
    const variants = s.anyOf as Array<{ type?: unknown; const?: unknown }>;
    const literal = variants.find((v) => v.const !== undefined && String(v.const) === raw);
    if (literal) return { ok: true, value: literal.const };
    if (variants.some((v) => v.type === 'object') && raw.trim().startsWith('{')) return parseJson(raw);
    return { ok: true, value: raw };
  }
  switch (s.type) {
    case 'integer':
    case 'number': {
      const n = Number(raw);
      return raw.trim() !== '' && Number.isFinite(n) ? { ok: true, value: n } : { ok: false, message: `'${raw}' is not a number` };
    }
    case 'boolean':
      if (raw === 'true' || raw === 'false') return { ok: true, value: raw === 'true' };
      return { ok: false, message: `'${raw}' is not true or false` };
    case 'object':
      return parseJson(raw);
    default:
      return { ok: true, value: raw };
  }
}

function parseJson(raw: string): Coerced {
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch {
    return { ok: false, message: 'must be a JSON object' };
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (!isPlainObject(node[key])) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
