/** The current route, from `location.hash` (routes.ts says why a hash). */
import { parseRoute, routeHref, type Route } from './routes';

export class Router {
  route = $state.raw<Route>(parseRoute(location.hash));

  start(): () => void {
    const onChange = () => (this.route = parseRoute(location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }

  go(route: Route): void {
    location.hash = routeHref(route);
  }

  /** Changes the URL without a history entry (a chosen range, say). */
  replace(route: Route): void {
    history.replaceState(history.state, '', routeHref(route));
    this.route = parseRoute(location.hash);
  }
}

export const router = new Router();
