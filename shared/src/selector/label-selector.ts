/**
 * Label selectors in Kubernetes syntax: a comma-separated conjunction of requirements.
 *
 *   selector    = [ requirement *( "," requirement ) ]        ; empty selects every device
 *   requirement = key ( "=" / "==" / "!=" ) value
 *               / key ( "in" / "notin" ) "(" value *( "," value ) ")"
 *               / key                                          ; label exists
 *               / "!" key                                      ; label does not exist
 *   key, value  = label syntax (see LabelKey / LabelValue in protocol/schemas.ts)
 *
 * `!=` and `notin` also select devices that lack the key, as in Kubernetes.
 */
export type Requirement =
  | { key: string; op: 'eq' | 'neq'; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'absent' };

export type Selector = readonly Requirement[];

export class SelectorSyntaxError extends Error {
  readonly code = 'CAIRN_BAD_SELECTOR';
  constructor(message: string, readonly position: number) {
    super(`${message} at position ${position}`);
    this.name = 'SelectorSyntaxError';
  }
}

const KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;
const MAX_SELECTOR_LENGTH = 4096;

type Token = { kind: 'word' | 'op' | '(' | ')' | ',' | '!'; text: string; at: number };

function tokenize(input: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    if (c === ' ' || c === '\t') {
      i++;
    } else if (c === '(' || c === ')' || c === ',') {
      tokens.push({ kind: c, text: c, at: i++ });
    } else if (c === '!' && input[i + 1] === '=') {
      tokens.push({ kind: 'op', text: '!=', at: i });
      i += 2;
    } else if (c === '!') {
      tokens.push({ kind: '!', text: c, at: i++ });
    } else if (c === '=') {
      const two = input[i + 1] === '=';
      tokens.push({ kind: 'op', text: '=', at: i });
      i += two ? 2 : 1;
    } else {
      const start = i;
      while (i < input.length && /[A-Za-z0-9._/-]/.test(input[i]!)) i++;
      if (i === start) throw new SelectorSyntaxError(`unexpected character ${JSON.stringify(c)}`, i);
      tokens.push({ kind: 'word', text: input.slice(start, i), at: start });
    }
  }
  return tokens;
}

export function parseSelector(input: string): Selector {
  if (input.length > MAX_SELECTOR_LENGTH) throw new SelectorSyntaxError(`selector longer than ${MAX_SELECTOR_LENGTH} characters`, MAX_SELECTOR_LENGTH);
  const tokens = tokenize(input);
  const requirements: Requirement[] = [];
  let i = 0;
  const peek = () => tokens[i];
  const end = input.length;
  const expect = (kind: Token['kind'], what: string): Token => {
    const t = tokens[i];
    if (!t || t.kind !== kind) throw new SelectorSyntaxError(`expected ${what}`, t?.at ?? end);
    i++;
    return t;
  };
  const key = (): string => {
    const t = expect('word', 'a label key');
    if (!KEY.test(t.text)) throw new SelectorSyntaxError(`invalid label key ${JSON.stringify(t.text)}`, t.at);
    return t.text;
  };
  const value = (): string => {
    const t = peek();
    if (!t || t.kind !== 'word') return ''; // an empty value is allowed: `tier=`
    i++;
    if (!VALUE.test(t.text)) throw new SelectorSyntaxError(`invalid label value ${JSON.stringify(t.text)}`, t.at);
    return t.text;
  };
  if (tokens.length === 0) return requirements;
  for (;;) {
    const t = peek();
    if (t?.kind === '!') {
      i++;
      requirements.push({ key: key(), op: 'absent' });
    } else {
      const k = key();
      const next = peek();
      if (!next || next.kind === ',') {
        requirements.push({ key: k, op: 'exists' });
      } else if (next.kind === 'op') {
        i++;
        requirements.push({ key: k, op: next.text === '!=' ? 'neq' : 'eq', value: value() });
      } else if (next.kind === 'word' && (next.text === 'in' || next.text === 'notin')) {
        i++;
        expect('(', '"("');
        const values = [value()];
        while (peek()?.kind === ',') {
          i++;
          values.push(value());
        }
        expect(')', '")"');
        requirements.push({ key: k, op: next.text, values });
      } else {
        throw new SelectorSyntaxError(`expected an operator after ${JSON.stringify(k)}`, next.at);
      }
    }
    const sep = peek();
    if (!sep) return requirements;
    if (sep.kind !== ',') throw new SelectorSyntaxError('expected "," between requirements', sep.at);
    i++;
    if (!peek()) throw new SelectorSyntaxError('expected a requirement after ","', end);
  }
}

export function matchesSelector(selector: Selector, labels: Readonly<Record<string, string>>): boolean {
  return selector.every((r) => {
    const has = Object.prototype.hasOwnProperty.call(labels, r.key);
    const v = has ? labels[r.key] : undefined;
    switch (r.op) {
      case 'eq':
        return has && v === r.value;
      case 'neq':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v!);
      case 'notin':
        return !has || !r.values.includes(v!);
      case 'exists':
        return has;
      case 'absent':
        return !has;
    }
  });
}

/** The canonical text of a parsed selector (stable for storage and display). */
export function formatSelector(selector: Selector): string {
  return selector
    .map((r) => {
      switch (r.op) {
        case 'eq':
          return `${r.key}=${r.value}`;
        case 'neq':
          return `${r.key}!=${r.value}`;
        case 'in':
        case 'notin':
          return `${r.key} ${r.op} (${r.values.join(',')})`;
        case 'exists':
          return r.key;
        case 'absent':
          return `!${r.key}`;
      }
    })
    .join(',');
}
