/**
 * Validation of a label selector as the operator types it, with the hub's own parser
 * (shared/src/selector/label-selector.ts), so what the input accepts is exactly what the API
 * accepts, and the message points at the position the hub would name.
 */
import { matchesSelector, parseSelector, SelectorSyntaxError, type Selector } from '@cairn/shared/selector/label-selector.js';

export type SelectorCheck = { ok: true; selector: Selector; empty: boolean } | { ok: false; message: string; position: number };

export function checkSelector(text: string): SelectorCheck {
  try {
    const selector = parseSelector(text);
    return { ok: true, selector, empty: selector.length === 0 };
  } catch (error) {
    if (error instanceof SelectorSyntaxError) {
      return { ok: false, message: error.message, position: error.position };
    }
    return { ok: false, message: error instanceof Error ? error.message : String(error), position: 0 };
  }
}

export { matchesSelector, type Selector };
