/**
 * Live-stream module: `GET /api/v1/stream`, server-sent events of device status, rollouts,
 * alerts and work orders (stream-events.ts lists them), resumable with Last-Event-ID from a
 * journal in SQLite (stream-journal.ts), pruned by a node-cron job and after bursts of appends.
 *
 * A client gives the last id it saw in the `Last-Event-ID` header (what a browser's EventSource
 * sends on reconnecting) or, when it cannot set headers, in `?lastEventId=`; the header wins,
 * since an EventSource keeps its first URL on every reconnect. Without one, the stream starts
 * at the present. Hub shutdown ends every stream (`preClose`), so closing never waits on them.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { schedule } from 'node-cron';
import { DeviceId } from '@cairn/shared';
import type { ModuleOptions } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { errorResponses } from '../../infra/api-schemas.js';
import { accessRule, checkAccess } from '../operators/access.js';
import { StreamJournal } from './stream-journal.js';
import { StreamClient } from './stream-client.js';
import { sseFrame, sseRetry, subscribeStreamEvents, type JournaledEventName } from './stream-events.js';

const streamPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { config, db, clock, metrics, logger } = ctx;
  const settings = config.stream;
  const journal = new StreamJournal(db);
  /** Each open stream with the credential it was opened with, re-checked at every heartbeat. */
  const clients = new Map<StreamClient, { authorization: string | undefined; cookie: string | undefined }>();

  // Pruned every minute, and after every tenth of the bound in appends so a burst cannot outgrow it by more.
  const pruneEvery = Math.max(1, Math.floor(settings.journalMaxEvents / 10));
  let appendsSincePrune = 0;
  const prune = () => {
    appendsSincePrune = 0;
    try {
      const removed = journal.prune(settings.journalMaxEvents, clock() - settings.journalMaxAgeHours * 3600_000);
      if (removed > 0) logger.debug({ removed }, 'pruned the live-stream journal');
    } catch (err) {
      logger.error({ err }, 'pruning the live-stream journal failed');
    }
  };

  const publish = (event: JournaledEventName, data: unknown) => {
    let text: string;
    let id: number;
    try {
      text = JSON.stringify(data);
      id = journal.append(event, text, clock());
    } catch (err) {
      // The stream must never fail the module that announced the fact (a device's PUBACK waits on it).
      logger.error({ err, event }, 'live-stream event could not be journaled; it is not sent');
      return;
    }
    const frame = sseFrame(event, text, id);
    for (const client of clients.keys()) client.deliver(event, frame);
    if (++appendsSincePrune >= pruneEvery) prune();
  };
  const stopEvents = subscribeStreamEvents(ctx.bus, ctx.devices, publish, (stored) => {
    let frame: string | undefined;
    for (const client of clients.keys()) {
      if (client.device !== stored.deviceId) continue;
      frame ??= sseFrame('telemetry', JSON.stringify(stored));
      client.deliver('telemetry', frame);
    }
  });

  prune();
  const pruneJob = schedule('* * * * *', prune);
  // A stream outlives the request that opened it: a token revoked, a session expired or a user
  // disabled or demoted since then ends it at the next heartbeat (the client's reconnect is refused).
  const rule = accessRule('GET', STREAM_ROUTE);
  const heartbeat = setInterval(() => {
    for (const [client, credential] of clients) {
      const principal = ctx.operators.authenticate(credential.authorization, credential.cookie, { touch: false });
      if (checkAccess(principal, rule, `GET ${STREAM_ROUTE}`)) {
        metrics.streamClientsDropped.inc({ reason: 'credential' });
        logger.info({ user: principal?.username ?? null }, 'ended a live stream whose credential no longer grants it');
        client.end();
      } else {
        client.heartbeat();
      }
    }
  }, settings.heartbeatSeconds * 1000);
  heartbeat.unref();

  fastify.addHook('preClose', async () => {
    clearInterval(heartbeat);
    for (const client of clients.keys()) client.end();
  });
  fastify.addHook('onClose', async () => {
    stopEvents();
    await pruneJob.stop();
  });

  app.get(
    STREAM_ROUTE,
    {
      // A HEAD request would hold a connection open with nothing to send.
      exposeHeadRoute: false,
      schema: {
        summary: 'Live events (text/event-stream): device, rollout, rollout_device, alert, work_order; telemetry with ?device=',
        description:
          'Server-sent events. Every event but `telemetry` has an increasing id and is journaled: reconnect with the `Last-Event-ID` header (or `?lastEventId=`) to receive exactly the events missed; an id the journal no longer covers gets a `reset` event (refetch state, then carry on). A comment line is sent every `stream.heartbeatSeconds`.',
        querystring: Type.Object({
          device: Type.Optional(DeviceId),
          lastEventId: Type.Optional(Type.String({ maxLength: 32, description: 'for clients that cannot set the Last-Event-ID header; the header wins' })),
        }),
        response: errorResponses,
      },
    },
    async (request, reply) => {
      // fastify does not parse GET bodies; a request announcing one is a confused client, refused
      // rather than left holding a stream (nor can a test's inject() ever end one).
      const { 'content-type': contentType, 'content-length': length, 'transfer-encoding': chunked } = request.headers;
      if (contentType !== undefined || (length !== undefined && length !== '0') || chunked !== undefined) throw Errors.badRequest(`GET ${STREAM_ROUTE} takes no request body`);
      const device = request.query.device ?? null;
      if (device !== null && !ctx.devices.get(device)) throw Errors.deviceNotFound([device]);
      const header = request.headers['last-event-id'];
      const lastEventId = (Array.isArray(header) ? header[0] : header) ?? request.query.lastEventId;

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        // Reverse proxies (nginx) would otherwise buffer the stream.
        'x-accel-buffering': 'no',
      });
      res.write(sseRetry(settings.retryMs));
      const client = new StreamClient(res, {
        journal,
        maxBufferedBytes: settings.clientMaxBufferedBytes,
        device,
        sent: (event) => metrics.streamEventsSent.inc({ event }),
        reset: (reason) => metrics.streamResets.inc({ reason }),
        dropped: (reason) => {
          metrics.streamClientsDropped.inc({ reason });
          logger.warn({ reason, maxBufferedBytes: settings.clientMaxBufferedBytes, actor: request.actor.actor }, 'dropped a live-stream client that does not keep up; it resumes from its last event id');
        },
      });
      clients.set(client, { authorization: request.headers.authorization, cookie: request.headers.cookie });
      metrics.streamClients.set(clients.size);
      res.once('close', () => {
        clients.delete(client);
        metrics.streamClients.set(clients.size);
      });

      if (lastEventId === undefined || lastEventId === '') {
        client.goLive(journal.head());
        return;
      }
      client.resume(lastEventId).catch((err: Error) => {
        logger.error({ err }, 'live-stream replay failed');
        client.end();
      });
    },
  );
};

const STREAM_ROUTE = '/api/v1/stream';

export default streamPlugin;
