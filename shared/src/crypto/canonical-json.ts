/**
 * RFC 8785 (JSON Canonicalization Scheme) serialization: the exact bytes every signature in
 * Cairn covers. Primitives go through the `canonicalize` library, which implements the RFC's
 * number formatting and refuses what the RFC cannot represent (NaN, Infinity, lone surrogates);
 * objects and arrays are walked here the way that library walks them (keys in UTF-16 code-unit
 * order, undefined members left out, `toJSON` honoured, cycles refused), so that one more rule
 * fits in:
 *
 * The canonical form of a value passed to `freezeCanonical` is computed once and reused. The hub
 * signs one desired document per device, and each embeds the same keyring and the same signed
 * manifest (most of its ~10 KiB); memoizing those two makes a fleet-wide deployment cost one
 * canonicalization of them instead of one per device. Only values deep-frozen by
 * `freezeCanonical` are memoized, so a cached form can never go stale; nothing parsed from the
 * network is ever frozen, so verification always serializes what it received.
 */
import canonicalize from 'canonicalize';

const memo = new WeakMap<object, string>();

export function canonicalJson(value: unknown): string {
  const text = serialize(value, new Set());
  if (text === undefined) throw new TypeError('value has no JSON representation');
  return text;
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}

/**
 * Deep-freezes `value` and remembers its canonical form; returns the same value. For values that
 * many documents embed unchanged (a keyring, a signed manifest).
 */
export function freezeCanonical<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !memo.has(value)) {
    deepFreeze(value);
    memo.set(value, canonicalJson(value));
  }
  return value;
}

function deepFreeze(value: object): void {
  for (const child of Object.values(value)) if (typeof child === 'object' && child !== null) deepFreeze(child);
  Object.freeze(value);
}

function serialize(value: unknown, seen: Set<object>): string | undefined {
  if (value === null || typeof value !== 'object') return canonicalize(value);
  const known = memo.get(value);
  if (known !== undefined) return known;
  if (seen.has(value)) throw new Error('Circular reference detected');
  seen.add(value);
  let result: string | undefined;
  const withToJson = value as { toJSON?: () => unknown };
  if (typeof withToJson.toJSON === 'function') {
    result = serialize(withToJson.toJSON(), seen);
  } else if (Array.isArray(value)) {
    result = `[${value.map((v: unknown) => serialize(v === undefined || typeof v === 'symbol' ? null : v, seen)).join(',')}]`;
  } else {
    const record = value as Record<string, unknown>;
    const parts: string[] = [];
    for (const key of Object.keys(record).sort()) {
      const v = record[key];
      if (v === undefined || typeof v === 'symbol') continue;
      parts.push(`${canonicalize(key)}:${serialize(v, seen)}`);
    }
    result = `{${parts.join(',')}}`;
  }
  seen.delete(value);
  return result;
}
