/**
 * Who the console is signed in as.
 *
 * The hub keeps the session: `POST /api/v1/session` sets an HttpOnly, SameSite=Strict cookie the
 * page cannot read, so no credential is ever stored by the console (no token in the URL, in
 * sessionStorage or in memory). On start the console asks `GET /api/v1/session`; a 401 there, or
 * from any later request, shows the sign-in panel.
 *
 * Roles: the hub decides every request on its own (a viewer gets 403 for an action). Pages read
 * `operator.role` through lib/roles.ts and render no action a role cannot take.
 */
import type { Api, ApiError, Operator } from './api';

export type SessionState = 'checking' | 'signed-out' | 'signed-in';

export class Session {
  operator = $state.raw<Operator | null>(null);
  state = $state<SessionState>('checking');
  /** Why the sign-in panel is showing when it is not the first visit: the hub ended the session. */
  rejection = $state.raw<ApiError | null>(null);

  #api: Api | undefined;

  /** Call once at start-up with the app's API client: asks the hub whether a session exists. */
  async restore(api: Api): Promise<void> {
    this.#api = api;
    try {
      this.#signedIn(await api.whoami());
    } catch {
      // 401 (no session) or an unreachable hub: either way, the sign-in panel.
      if (this.state === 'checking') this.state = 'signed-out';
    }
  }

  /** Throws the hub's ApiError (wrong credentials, throttled) for the sign-in panel to show. */
  async signIn(username: string, password: string): Promise<void> {
    this.#signedIn(await this.#require().login(username, password));
  }

  async signOut(): Promise<void> {
    try {
      await this.#require().logout();
    } finally {
      this.operator = null;
      this.rejection = null;
      this.state = 'signed-out';
    }
  }

  /** The hub answered 401 to a request: the session ended (expired, logged out elsewhere, user disabled). */
  reject(error: ApiError): void {
    if (this.state !== 'signed-in') return;
    this.operator = null;
    this.rejection = error;
    this.state = 'signed-out';
  }

  #signedIn(operator: Operator): void {
    this.operator = operator;
    this.rejection = null;
    this.state = 'signed-in';
  }

  #require(): Api {
    if (!this.#api) throw new Error('session.restore(api) was not called');
    return this.#api;
  }
}

export const session = new Session();
