/**
 * Registry module: push an ONNX model (validated by loading it in onnxruntime), store its blob
 * content-addressed, write and sign its bundle manifest; list, show and pull versions.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { ModelName, SemVer, SignedManifest, TensorSpec, type ManifestT } from '@cairn/shared';
import type { ModuleOptions } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { errorResponses, iso } from '../../infra/api-schemas.js';
import { BlobTooLargeError } from './blob-store.js';
import { inspectOnnx, OnnxLoadError } from './onnx-inspect.js';
import { formatModelRef } from './model-ref.js';
import type { ModelVersion } from './registry.repository.js';

/** The oldest agent that understands the manifests this hub writes. */
export const MIN_AGENT_VERSION = '0.1.0';

export const ModelSummary = Type.Object({
  name: Type.String(),
  version: Type.String(),
  releaseCounter: Type.Integer(),
  digest: Type.String(),
  size: Type.Integer(),
  createdAt: Type.String(),
  inputs: Type.Array(TensorSpec),
  outputs: Type.Array(TensorSpec),
  signedBy: Type.Array(Type.String()),
});
const ModelDetail = Type.Intersect([ModelSummary, Type.Object({ bundle: SignedManifest })]);

const summary = (m: ModelVersion) => ({
  name: m.name,
  version: m.version,
  releaseCounter: m.releaseCounter,
  digest: m.digest,
  size: m.size,
  createdAt: iso(m.createdAt)!,
  inputs: m.bundle.manifest.inputs,
  outputs: m.bundle.manifest.outputs,
  signedBy: m.bundle.signatures.map((s) => s.keyId),
});

const VersionParams = Type.Object({ name: ModelName, version: SemVer });

const registryPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { registry, blobs, keys, clock, bus, logger } = ctx;
  const maxBytes = ctx.config.http.bodyLimitMb * 1024 * 1024;

  // Model uploads are raw bytes; the stream goes straight to disk, never into memory whole.
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

  const find = (name: string, version: string) => {
    const model = registry.get(name, version);
    if (!model) throw Errors.modelNotFound(formatModelRef({ name, version }));
    return model;
  };

  app.post(
    '/api/v1/models',
    {
      bodyLimit: maxBytes,
      schema: {
        summary: 'Push an ONNX model version (body: the .onnx bytes, Content-Type: application/octet-stream)',
        querystring: Type.Object({ name: ModelName, version: SemVer, description: Type.Optional(Type.String({ maxLength: 2000 })) }, { additionalProperties: false }),
        response: { 201: ModelDetail, ...errorResponses, 409: errorResponses[400], 413: errorResponses[400], 415: errorResponses[400], 422: errorResponses[400] },
      },
    },
    async (request, reply) => {
      const { name, version, description } = request.query;
      const ref = formatModelRef({ name, version });
      if (registry.get(name, version)) throw Errors.modelExists(ref);
      if (!request.body || typeof (request.body as Readable).pipe !== 'function') {
        throw Errors.badRequest('send the ONNX file as the request body with Content-Type: application/octet-stream');
      }
      let staged;
      try {
        staged = await blobs.stage(request.body as Readable, maxBytes);
      } catch (err) {
        if (err instanceof BlobTooLargeError) throw Errors.payloadTooLarge(err.limit);
        throw err;
      }
      try {
        if (staged.size === 0) throw Errors.invalidModel('the uploaded file is empty');
        let signature;
        try {
          signature = await inspectOnnx(staged.path);
        } catch (err) {
          if (err instanceof OnnxLoadError) throw Errors.invalidModel(err.message);
          throw err;
        }
        const manifest: ManifestT = {
          schema: 'cairn.bundle/v1',
          name,
          version,
          releaseCounter: registry.nextReleaseCounter(),
          createdAt: clock(),
          files: [{ role: 'model', path: 'model.onnx', digest: staged.digest, size: staged.size, mediaType: 'application/onnx' }],
          inputs: signature.inputs,
          outputs: signature.outputs,
          compatibility: { minAgentVersion: MIN_AGENT_VERSION },
          ...(description ? { description } : {}),
        };
        const bundle = { manifest, signatures: [keys.signManifest(manifest)] };
        staged.commit();
        if (!registry.insert(bundle, clock())) throw Errors.modelExists(ref); // lost a race with a concurrent push
        logger.info({ model: ref, digest: staged.digest, size: staged.size }, 'model pushed');
        bus.emit('model.pushed', { name, version, digest: staged.digest });
        reply.code(201);
        return { ...summary(registry.get(name, version)!), bundle };
      } finally {
        staged.discard();
      }
    },
  );

  app.get('/api/v1/models', { schema: { response: { 200: Type.Object({ models: Type.Array(ModelSummary) }), ...errorResponses } } }, async () => ({
    models: registry.list().map(summary),
  }));

  app.get('/api/v1/models/:name/:version', { schema: { params: VersionParams, response: { 200: ModelDetail, ...errorResponses } } }, async (request) => {
    const model = find(request.params.name, request.params.version);
    return { ...summary(model), bundle: model.bundle };
  });

  app.get('/api/v1/models/:name/:version/blob', { schema: { params: VersionParams } }, async (request, reply) => {
    const model = find(request.params.name, request.params.version);
    reply.header('content-type', 'application/octet-stream');
    reply.header('content-length', model.size);
    reply.header('content-disposition', `attachment; filename="${model.name}-${model.version}.onnx"`);
    reply.header('x-cairn-digest', model.digest);
    return reply.send(createReadStream(blobs.pathOf(model.digest)));
  });
};

export default registryPlugin;
