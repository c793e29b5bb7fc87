/**
 * Serves the built console (console/dist) at `/`: hashed assets with immutable caching, and
 * index.html (never cached) for every other non-API GET so client-side routes work.
 *
 * The files are public (the access table's `GET /*`): the console holds no secret and asks for
 * a login before it shows anything. One wildcard route rather than a route per file keeps the
 * table finite; a path with no file falls through to the not-found handler below.
 */
import type { FastifyPluginAsync } from 'fastify';
import fastifyStatic from '@fastify/static';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ModuleOptions } from '../../infra/context.js';

export const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../../../console/dist', import.meta.url));

const NOT_BUILT = `<!doctype html><meta charset="utf-8"><title>Cairn</title>
<p>The Cairn console is not built. Run <code>npm run build</code> and reload.</p>`;

const consolePlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const dir = ctx.config.console.dir ?? DEFAULT_CONSOLE_DIR;
  const indexFile = join(dir, 'index.html');
  const built = existsSync(indexFile);
  if (!built) ctx.logger.warn({ dir }, 'console is not built; serving a placeholder at /');

  if (built) {
    await fastify.register(fastifyStatic, {
      root: dir,
      prefix: '/',
      index: false,
      wildcard: true,
      setHeaders(res, path) {
        res.setHeader('cache-control', path.includes('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
      },
    });
  }

  const sendIndex = (reply: import('fastify').FastifyReply) =>
    reply
      .header('cache-control', 'no-cache')
      .header('content-security-policy', "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'")
      .header('x-content-type-options', 'nosniff')
      .type('text/html; charset=utf-8')
      .send(built ? readFileSync(indexFile) : NOT_BUILT);

  fastify.get('/', async (_request, reply) => sendIndex(reply));
  fastify.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (request.method === 'GET' && !path.startsWith('/api/') && !path.startsWith('/assets/') && !/\.[a-z0-9]+$/i.test(path)) return sendIndex(reply);
    return reply.code(404).send({ statusCode: 404, code: 'CAIRN_NOT_FOUND', error: 'Not Found', message: `no route for ${request.method} ${path}` });
  });
};

export default consolePlugin;
