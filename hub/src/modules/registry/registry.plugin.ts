/**
 * Registry module: push an ONNX model (validated by loading it in onnxruntime), store its blob
 * content-addressed, write and sign its bundle manifest; list, show and pull versions.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { ModelName, SemVer, SignedManifest, TensorSpec } from '@cairn/shared';
import type { ModuleOptions } from '../../infra/context.js';
import { Errors } from '../../infra/errors.js';
import { errorResponses, iso } from '../../infra/api-schemas.js';
import { BlobTooLargeError } from './blob-store.js';
import { inspectOnnx, OnnxLoadError } from './onnx-inspect.js';
import { formatModelRef } from './model-ref.js';
import { publishModel } from './publisher.js';
import { runPublishPipeline } from './publish-pipeline.js';
import { approveModel } from './approval-policy.js';
import type { Approval, ModelVersion } from './registry.repository.js';

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
  pushedBy: Type.Union([Type.String(), Type.Null()]),
  /** Who approved the version for more than a canary (approval-policy.ts); empty until someone does. */
  approvedBy: Type.Array(Type.String()),
});
const ModelDetail = Type.Intersect([ModelSummary, Type.Object({ bundle: SignedManifest })]);

const summary = (m: ModelVersion, approvals: Approval[]) => ({
  name: m.name,
  version: m.version,
  releaseCounter: m.releaseCounter,
  digest: m.digest,
  size: m.size,
  createdAt: iso(m.createdAt)!,
  inputs: m.bundle.manifest.inputs,
  outputs: m.bundle.manifest.outputs,
  signedBy: m.bundle.signatures.map((s) => s.keyId),
  pushedBy: m.pushedBy,
  approvedBy: approvals.map((a) => a.by),
});

const VersionParams = Type.Object({ name: ModelName, version: SemVer });

const registryPlugin: FastifyPluginAsync<ModuleOptions> = async (fastify, { ctx }) => {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>();
  const { registry, blobs } = ctx;
  const describe = (m: ModelVersion) => summary(m, registry.approvals(m.name, m.version));
  const maxBytes = ctx.config.http.bodyLimitMb * 1024 * 1024;

  // Model uploads are raw bytes; the stream goes straight to disk, never into memory whole.
  app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));

  /** Streams a raw request body into the blob store's staging area, bounded by the body limit. */
  const stageBody = async (body: unknown, what: string) => {
    if (!body || typeof (body as Readable).pipe !== 'function') {
      throw Errors.badRequest(`send ${what} as the request body with Content-Type: application/octet-stream`);
    }
    try {
      return await blobs.stage(body as Readable, maxBytes);
    } catch (err) {
      if (err instanceof BlobTooLargeError) throw Errors.payloadTooLarge(err.limit);
      throw err;
    }
  };

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
      const staged = await stageBody(request.body, 'the ONNX file');
      try {
        if (staged.size === 0) throw Errors.invalidModel('the uploaded file is empty');
        let signature;
        try {
          signature = await inspectOnnx(staged.path);
        } catch (err) {
          if (err instanceof OnnxLoadError) throw Errors.invalidModel(err.message);
          throw err;
        }
        staged.commit();
        const bundle = publishModel(ctx, request.actor, { name, version, digest: staged.digest, size: staged.size, inputs: signature.inputs, outputs: signature.outputs, ...(description ? { description } : {}) });
        reply.code(201);
        return { ...describe(registry.get(name, version)!), bundle };
      } finally {
        staged.discard();
      }
    },
  );

  app.post(
    '/api/v1/uploads',
    {
      bodyLimit: maxBytes,
      schema: {
        summary: 'Store a file (a model, calibration or reference data) content-addressed, for a later publish request',
        response: { 201: Type.Object({ digest: Type.String(), size: Type.Integer() }), ...errorResponses, 413: errorResponses[400], 415: errorResponses[400] },
      },
    },
    async (request, reply) => {
      const staged = await stageBody(request.body, 'the file');
      if (staged.size === 0) {
        staged.discard();
        throw Errors.badRequest('the uploaded file is empty');
      }
      staged.commit();
      ctx.audit.append(request.actor, { action: 'upload.store', target: `blob:${staged.digest}`, after: { size: staged.size } });
      reply.code(201);
      return { digest: staged.digest, size: staged.size };
    },
  );

  const Section = Type.Record(Type.String(), Type.Unknown());
  app.post(
    '/api/v1/models/publish',
    {
      bodyLimit: 8 * 1024 * 1024,
      schema: {
        summary: 'Publish uploaded files as a signed model version: validate, optionally quantize to int8 behind an accuracy gate, compute a drift reference',
        body: Type.Object(
          {
            name: ModelName,
            version: SemVer,
            description: Type.Optional(Type.String({ maxLength: 2000 })),
            model: Type.String({ pattern: '^[0-9a-f]{64}$', description: 'digest of the uploaded ONNX file' }),
            quantize: Type.Optional(Type.Literal('int8')),
            calibration: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
            reference: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
            tolerance: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'largest accepted accuracy drop, in points' })),
            maxAbsError: Type.Optional(Type.Number({ minimum: 0, description: 'largest accepted absolute output difference (required without labels for single-output models)' })),
            minAgreement: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'smallest accepted argmax agreement without labels; default 0.99' })),
            maxLatencyRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
            maxSizeRatio: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
            classes: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 1000 })),
            featureNames: Type.Optional(Type.Array(Type.String({ maxLength: 64 }), { maxItems: 10_000 })),
            sections: Type.Optional(
              Type.Object(
                { features: Type.Optional(Section), lineage: Type.Optional(Section), health: Type.Optional(Section), driftReference: Type.Optional(Section) },
                { additionalProperties: false },
              ),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 201: Type.Intersect([ModelDetail, Type.Object({ gate: Type.Optional(Type.Record(Type.String(), Type.Unknown())) })]), ...errorResponses, 409: errorResponses[400], 422: errorResponses[400] },
      },
    },
    async (request, reply) => {
      const { bundle, gate } = await runPublishPipeline(ctx, request.actor, request.body);
      reply.code(201);
      return { ...describe(registry.get(bundle.manifest.name, bundle.manifest.version)!), bundle, ...(gate ? { gate: gate as unknown as Record<string, unknown> } : {}) };
    },
  );

  app.get('/api/v1/models', { schema: { response: { 200: Type.Object({ models: Type.Array(ModelSummary) }), ...errorResponses } } }, async () => ({
    models: registry.list().map(describe),
  }));

  app.get('/api/v1/models/:name/:version', { schema: { params: VersionParams, response: { 200: ModelDetail, ...errorResponses } } }, async (request) => {
    const model = find(request.params.name, request.params.version);
    return { ...describe(model), bundle: model.bundle };
  });

  app.post(
    '/api/v1/models/:name/:version/approve',
    {
      schema: {
        summary: 'Approve a version for deployment beyond a canary; the approver must not be the operator who pushed it',
        params: VersionParams,
        response: { 200: ModelSummary, ...errorResponses, 403: errorResponses[400] },
      },
    },
    async (request) => {
      const model = find(request.params.name, request.params.version);
      approveModel(ctx, request.actor, model);
      return describe(model);
    },
  );

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
