/**
 * Who the console is signed in as: an API token, nothing more (roles come with the auth module).
 *
 * Token flow: `cairn demo` prints a URL ending in `#token=<token>`. On start the console takes the
 * token from the fragment (a fragment never reaches a server or a Referer header), keeps it in
 * sessionStorage under `cairn.token` (per tab, gone when the tab closes) and removes it from the
 * address bar so it does not stay in history, bookmarks or screenshots. Without a token, or when
 * the hub answers 401, the sign-in panel asks for one.
 */
import type { ApiError } from './api';

export const TOKEN_STORAGE_KEY = 'cairn.token';

/**
 * Accepts what an operator is likely to paste: the bare token, `Bearer <token>`, or the whole URL
 * printed by `cairn demo`. Returns null when nothing usable is left.
 */
export function parseToken(input: string): string | null {
  let text = input.trim();
  const fragment = text.indexOf('#');
  if (fragment >= 0) {
    const fromUrl = new URLSearchParams(text.slice(fragment + 1)).get('token');
    if (fromUrl) text = fromUrl.trim();
  }
  text = text.replace(/^bearer\s+/i, '');
  return text === '' || /\s/.test(text) ? null : text;
}

/** Removes `token=` from the fragment, keeping any other fragment parameters, and returns it. */
export function takeTokenFromLocation(location: Location, history: History): string | null {
  if (!location.hash.startsWith('#')) return null;
  const params = new URLSearchParams(location.hash.slice(1));
  const raw = params.get('token');
  if (raw === null) return null;
  params.delete('token');
  const rest = params.toString();
  history.replaceState(history.state, '', `${location.pathname}${location.search}${rest ? `#${rest}` : ''}`);
  return parseToken(raw);
}

/** sessionStorage can be unavailable (disabled storage, some private modes); the tab then forgets on reload. */
function readStored(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_STORAGE_KEY);
  } catch {
    return null;
  }
}

function writeStored(token: string | null): void {
  try {
    if (token === null) sessionStorage.removeItem(TOKEN_STORAGE_KEY);
    else sessionStorage.setItem(TOKEN_STORAGE_KEY, token);
  } catch {
    // Kept in memory only.
  }
}

export class Session {
  token = $state<string | null>(null);
  /** Why the sign-in panel is showing when it is not the first visit: the hub refused the token. */
  rejection = $state.raw<ApiError | null>(null);

  /**
   * Call once at start-up, before anything talks to the hub. Also watches the fragment: pasting
   * the `cairn demo` URL into the address bar of an open console changes only the hash, which
   * does not reload the page.
   */
  restore(): void {
    const fromUrl = takeTokenFromLocation(window.location, window.history);
    if (fromUrl !== null) writeStored(fromUrl);
    this.token = fromUrl ?? readStored();
    window.addEventListener('hashchange', () => {
      const token = takeTokenFromLocation(window.location, window.history);
      if (token !== null) this.signIn(token);
    });
  }

  signIn(token: string): void {
    writeStored(token);
    this.token = token;
    this.rejection = null;
  }

  signOut(): void {
    writeStored(null);
    this.token = null;
    this.rejection = null;
  }

  /** The hub answered 401: forget the token and show why on the sign-in panel. */
  reject(error: ApiError): void {
    if (this.token === null) return;
    writeStored(null);
    this.token = null;
    this.rejection = error;
  }
}

export const session = new Session();
