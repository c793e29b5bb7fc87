/**
 * Blob service: answers a device's `blob/req {digest, from, count}` with one binary `blob/res`
 * frame per chunk. A device may fetch only the blob its current desired document names, so the
 * broker cannot be used to pull arbitrary models. Frames are published one at a time, awaiting
 * the broker, which back-pressures a fast requester.
 */
import type { FastifyPluginAsync } from 'fastify';
import { BLOB_CHUNK_BYTES, BLOB_MAX_WINDOW, deviceTopic, encodeBlobFrame } from '@cairn/shared';
import type { ModuleOptions } from '../../infra/context.js';
import { onDeviceMessage } from '../../infra/device-ingress.js';

const blobsPlugin: FastifyPluginAsync<ModuleOptions> = async (_fastify, { ctx }) => {
  const { broker, blobs, deployments, metrics, logger } = ctx;

  await onDeviceMessage(ctx, 'blob/req', async (deviceId, req) => {
    const topic = deviceTopic(deviceId, 'blob/res');
    const refuse = async (reason: string) => {
      metrics.blobRequestsRefused.inc({ reason });
      logger.warn({ deviceId, digest: req.digest, reason }, 'refused a blob request');
      await broker.publish(topic, encodeBlobFrame({ digest: req.digest, index: req.from, total: 0, error: reason }), { qos: 1, retain: false });
    };
    if (deployments.desiredHead(deviceId)?.digest !== req.digest) return refuse('not_assigned');
    if (!blobs.has(req.digest)) return refuse('not_found');
    const size = blobs.size(req.digest);
    const total = Math.ceil(size / BLOB_CHUNK_BYTES);
    if (req.from >= total) return refuse('out_of_range');
    const last = Math.min(total, req.from + Math.min(req.count, BLOB_MAX_WINDOW));
    const file = await blobs.open(req.digest);
    try {
      for (let index = req.from; index < last; index++) {
        const length = Math.min(BLOB_CHUNK_BYTES, size - index * BLOB_CHUNK_BYTES);
        const chunk = Buffer.allocUnsafe(length);
        await file.read(chunk, 0, length, index * BLOB_CHUNK_BYTES);
        const frame = encodeBlobFrame({ digest: req.digest, index, total }, chunk);
        await broker.publish(topic, frame, { qos: 1, retain: false });
        metrics.blobChunksServed.inc();
        metrics.blobBytesServed.inc(frame.length);
      }
    } finally {
      await file.close();
    }
  });
};

export default blobsPlugin;
