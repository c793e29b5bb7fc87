/**
 * RFC 8785 (JSON Canonicalization Scheme) serialization: the exact bytes every signature in
 * Cairn covers. Delegates to the `canonicalize` library, which implements the RFC's number
 * formatting and UTF-16 key ordering.
 */
import canonicalize from 'canonicalize';

export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError('value has no JSON representation');
  return text;
}

export function canonicalBytes(value: unknown): Buffer {
  return Buffer.from(canonicalJson(value), 'utf8');
}
