/**
 * The one client for the hub's HTTP API. Components never call `fetch` themselves.
 *
 * Contract: every failure (an HTTP error answer, an unreachable hub, a timeout, an answer that
 * is not what the contract says) reaches the caller as an `ApiError {status, code, message}`.
 * `status` is the HTTP status, or 0 when no answer arrived. `code` is the hub's stable error
 * code (`CAIRN_*`, see hub/src/infra/errors.ts), one of the client-side codes below, or
 * `HTTP_<status>` when an error answer had no error body (a proxy's 502 page, say).
 */

export const DEPLOYMENT_PHASES = ['received', 'downloading', 'verifying', 'probing', 'trial', 'committed', 'rolled_back', 'failed'] as const;
export type DeploymentPhase = (typeof DEPLOYMENT_PHASES)[number];

/** The model a device is serving right now. */
export interface ActiveModel {
  name: string;
  version: string;
  digest: string;
  deploymentId: string;
}

/** The device's last reported progress on its most recent deployment. */
export interface DeploymentState {
  deploymentId: string;
  seq: number;
  phase: DeploymentPhase;
  digest: string | null;
  /** A closed reason code (shared/src/bundle/reasons.ts) when the phase is `failed` or `rolled_back`. */
  reason?: string;
  message?: string;
}

export interface Device {
  id: string;
  online: boolean;
  /** ISO 8601, or null when the device has never connected. */
  lastSeenAt: string | null;
  agentVersion: string | null;
  labels: Record<string, string>;
  active: ActiveModel | null;
  deployment: DeploymentState | null;
}

export type Role = 'viewer' | 'operator' | 'admin';

/** Who the console is signed in as (`GET /api/v1/session`). */
export interface Operator {
  username: string;
  role: Role;
}

export interface DeviceList {
  devices: Device[];
  total: number;
}

/** Codes the client produces itself, for failures that never reached the hub's error handler. */
export const CLIENT_ERRORS = {
  network: 'CAIRN_CLIENT_NETWORK',
  timeout: 'CAIRN_CLIENT_TIMEOUT',
  aborted: 'CAIRN_CLIENT_ABORTED',
  badResponse: 'CAIRN_CLIENT_BAD_RESPONSE',
} as const;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  get unauthorized(): boolean {
    return this.status === 401;
  }

  get aborted(): boolean {
    return this.code === CLIENT_ERRORS.aborted;
  }

  /** Turns anything thrown into an ApiError, so callers have one type to handle. */
  static from(error: unknown): ApiError {
    if (error instanceof ApiError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return new ApiError(0, CLIENT_ERRORS.network, message);
  }
}

/**
 * The hub refuses a cookie-authenticated request that changes state unless it carries this
 * header (a cross-site page cannot add one without a CORS preflight the hub never grants).
 */
export const CSRF_HEADER = 'x-cairn-csrf';

export interface ApiOptions {
  /** Origin of the hub; '' (the default) means the page's own origin. */
  baseUrl?: string;
  /** Called for every 401, before the error is thrown to the caller. */
  onUnauthorized?: (error: ApiError) => void;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

interface RequestOptions {
  signal?: AbortSignal;
  body?: unknown;
}

export function createApi(options: ApiOptions) {
  const baseUrl = options.baseUrl ?? '';
  const timeoutMs = options.timeoutMs ?? 10_000;
  const doFetch = options.fetch ?? globalThis.fetch.bind(globalThis);

  async function request<T>(method: string, path: string, { signal, body }: RequestOptions = {}): Promise<T> {
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const forwardAbort = () => controller.abort();
    signal?.addEventListener('abort', forwardAbort, { once: true });
    if (signal?.aborted) controller.abort();

    // The session is an HttpOnly cookie the browser sends by itself; the page never sees it.
    const headers: Record<string, string> = { accept: 'application/json' };
    if (method !== 'GET') headers[CSRF_HEADER] = '1';
    if (body !== undefined) headers['content-type'] = 'application/json';

    try {
      let response: Response;
      try {
        response = await doFetch(baseUrl + path, {
          method,
          headers,
          body: body === undefined ? undefined : JSON.stringify(body),
          signal: controller.signal,
          cache: 'no-store',
          credentials: 'same-origin',
        });
      } catch (error) {
        if (timedOut) throw new ApiError(0, CLIENT_ERRORS.timeout, `The hub did not answer within ${Math.round(timeoutMs / 1000)} s.`);
        if (controller.signal.aborted) throw new ApiError(0, CLIENT_ERRORS.aborted, 'The request was cancelled.');
        throw new ApiError(0, CLIENT_ERRORS.network, `The hub could not be reached (${error instanceof Error ? error.message : String(error)}).`);
      }

      const payload = await readJson(response);
      if (!response.ok) {
        const error = errorFromAnswer(response, payload);
        if (error.unauthorized) options.onUnauthorized?.(error);
        throw error;
      }
      if (response.status === 204) return undefined as T;
      if (payload === undefined) {
        throw new ApiError(response.status, CLIENT_ERRORS.badResponse, `The hub's answer to ${method} ${path} is not JSON.`);
      }
      return payload as T;
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', forwardAbort);
    }
  }

  return {
    /** The signed-in operator, or an ApiError with status 401 when there is no valid session. */
    whoami(signal?: AbortSignal): Promise<Operator> {
      return request<Operator>('GET', '/api/v1/session', { signal });
    },

    /** Sets the session cookie. Wrong credentials are a 401, a throttled login a 429 whose message says when to retry. */
    login(username: string, password: string): Promise<Operator> {
      return request<Operator>('POST', '/api/v1/session', { body: { username, password } });
    },

    logout(): Promise<void> {
      return request<void>('DELETE', '/api/v1/session');
    },

    async listDevices(signal?: AbortSignal): Promise<DeviceList> {
      const list = await request<DeviceList>('GET', '/api/v1/devices', { signal });
      if (!list || !Array.isArray(list.devices)) {
        throw new ApiError(200, CLIENT_ERRORS.badResponse, 'The device list from the hub has no `devices` array.');
      }
      return list;
    },
  };
}

export type Api = ReturnType<typeof createApi>;

/** The body as JSON, or undefined when it is empty or not JSON (a proxy's HTML error page, say). */
async function readJson(response: Response): Promise<unknown> {
  let text: string;
  try {
    text = await response.text();
  } catch {
    return undefined;
  }
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** The hub answers errors as `{statusCode, code, error, message}`; anything else gets a generic code. */
function errorFromAnswer(response: Response, payload: unknown): ApiError {
  if (payload && typeof payload === 'object') {
    const { code, message } = payload as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && typeof message === 'string') return new ApiError(response.status, code, message);
  }
  const statusText = response.statusText ? ` ${response.statusText}` : '';
  return new ApiError(response.status, `HTTP_${response.status}`, `The hub answered ${response.status}${statusText}.`);
}
