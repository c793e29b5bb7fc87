/**
 * The console's routes, in the URL's hash (`#/devices/press-7?range=6h&chart=drift`).
 *
 * Hash routing, not history routing: the hub's SPA fallback (console.plugin.ts) serves index.html
 * only for paths without a file extension, and device ids and model versions contain dots
 * (`/devices/press.7`, `/models/pdm/1.2.0`), which it would answer 404. A hash never reaches the
 * server, so every route works on a reload and a shared link, whatever it contains.
 *
 * `parseRoute` and `routeHref` are inverses (tested): pages and links use them, never strings.
 */
export type Route =
  | { page: 'fleet' }
  | { page: 'device'; id: string; range?: string; chart?: string }
  | { page: 'models' }
  | { page: 'model'; name: string; version: string }
  | { page: 'rollouts' }
  | { page: 'rollout-new' }
  | { page: 'rollout'; id: string }
  | { page: 'alerts' }
  | { page: 'work-orders' }
  | { page: 'audit' }
  | { page: 'not-found'; path: string };

export type PageName = Route['page'];

export function parseRoute(hash: string): Route {
  const text = hash.replace(/^#/, '');
  const [rawPath = '', rawQuery = ''] = text.split('?', 2);
  const parts = rawPath.split('/').filter((part) => part !== '');
  let segments: string[];
  try {
    segments = parts.map((part) => decodeURIComponent(part));
  } catch {
    return { page: 'not-found', path: rawPath };
  }
  const params = new URLSearchParams(rawQuery);
  const [first, second, third] = segments;
  if (segments.length === 0) return { page: 'fleet' };
  if (first === 'devices' && segments.length === 2 && second) {
    const route: Route = { page: 'device', id: second };
    const range = params.get('range');
    const chart = params.get('chart');
    if (range) route.range = range;
    if (chart) route.chart = chart;
    return route;
  }
  if (first === 'models' && segments.length === 1) return { page: 'models' };
  if (first === 'models' && segments.length === 3 && second && third) return { page: 'model', name: second, version: third };
  if (first === 'rollouts' && segments.length === 1) return { page: 'rollouts' };
  if (first === 'rollouts' && second === 'new' && segments.length === 2) return { page: 'rollout-new' };
  if (first === 'rollouts' && segments.length === 2 && second) return { page: 'rollout', id: second };
  if (first === 'alerts' && segments.length === 1) return { page: 'alerts' };
  if (first === 'work-orders' && segments.length === 1) return { page: 'work-orders' };
  if (first === 'audit' && segments.length === 1) return { page: 'audit' };
  return { page: 'not-found', path: `/${segments.join('/')}` };
}

const seg = encodeURIComponent;

export function routeHref(route: Route): string {
  switch (route.page) {
    case 'fleet':
      return '#/';
    case 'device': {
      const params = new URLSearchParams();
      if (route.range) params.set('range', route.range);
      if (route.chart) params.set('chart', route.chart);
      const search = params.toString();
      return `#/devices/${seg(route.id)}${search ? `?${search}` : ''}`;
    }
    case 'models':
      return '#/models';
    case 'model':
      return `#/models/${seg(route.name)}/${seg(route.version)}`;
    case 'rollouts':
      return '#/rollouts';
    case 'rollout-new':
      return '#/rollouts/new';
    case 'rollout':
      return `#/rollouts/${seg(route.id)}`;
    case 'alerts':
      return '#/alerts';
    case 'work-orders':
      return '#/work-orders';
    case 'audit':
      return '#/audit';
    case 'not-found':
      return `#${route.path}`;
  }
}

/** The navigation section a route belongs to (which header link is current). */
export function section(route: Route): 'fleet' | 'models' | 'rollouts' | 'alerts' | 'work-orders' | 'audit' | null {
  switch (route.page) {
    case 'fleet':
    case 'device':
      return 'fleet';
    case 'models':
    case 'model':
      return 'models';
    case 'rollouts':
    case 'rollout-new':
    case 'rollout':
      return 'rollouts';
    case 'alerts':
    case 'work-orders':
    case 'audit':
      return route.page;
    case 'not-found':
      return null;
  }
}

/** What identifies a page instance: the route without its query (a new device is a new page; a new range is not). */
export function routeKey(route: Route): string {
  return routeHref(route).split('?')[0] ?? '';
}
