import type { TestContext } from 'node:test';

/**
 * Registers teardown steps that run in reverse order of registration when the test ends (agents
 * before brokers before directories), each even when an earlier one fails.
 */
export function cleanup(t: TestContext): (fn: () => Promise<unknown>) => void {
  const steps: Array<() => Promise<unknown>> = [];
  t.after(async () => {
    for (const step of steps.reverse()) await step().catch(() => undefined);
  });
  return (fn) => void steps.push(fn);
}
