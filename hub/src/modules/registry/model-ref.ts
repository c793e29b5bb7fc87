/** `name@version` references to model versions, as typed by operators and stored by deployments. */
import { Errors } from '../../infra/errors.js';

export interface ModelRef {
  name: string;
  version: string;
}

export function parseModelRef(ref: string): ModelRef {
  const at = ref.lastIndexOf('@');
  if (at <= 0 || at === ref.length - 1) throw Errors.badModelRef(ref);
  return { name: ref.slice(0, at), version: ref.slice(at + 1) };
}

export const formatModelRef = (m: ModelRef) => `${m.name}@${m.version}`;
