/**
 * How a page runs an operator action (approve, pause, acknowledge…): one at a time, its failure
 * kept as an ApiError for the page's ErrorBanner, cleared by the next attempt.
 */
import { ApiError } from './api';

export class ActionRunner {
  error = $state.raw<ApiError | null>(null);
  busy = $state(false);

  /** Runs `action`; resolves true when it succeeded. Never throws. */
  async run(action: () => Promise<unknown>): Promise<boolean> {
    this.error = null;
    this.busy = true;
    try {
      await action();
      return true;
    } catch (error) {
      this.error = ApiError.from(error);
      return false;
    } finally {
      this.busy = false;
    }
  }
}
