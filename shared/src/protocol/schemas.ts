/**
 * TypeBox schemas of every v1 payload (DESIGN §2). Both sides validate every JSON payload they
 * receive against these, through the compiled validators in `payloads.ts`. Objects are closed
 * (`additionalProperties: false`) unless a field is documented as open for extension, so that an
 * unknown field is a loud error rather than silently ignored data.
 *
 * Times are integer milliseconds since the Unix epoch (`ts`, `issuedAt`, `expiresAt`).
 * Digests are lowercase hex SHA-256 of the blob's bytes.
 */
import { Type, type Static, type TSchema, type TObject, type TProperties } from 'typebox';
import { DEVICE_ID_MAX_LENGTH } from './topics.js';

const closed = <P extends TProperties>(properties: P): TObject<P> => Type.Object(properties, { additionalProperties: false });

export const DeviceId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', maxLength: DEVICE_ID_MAX_LENGTH });
export const Sha256Hex = Type.String({ pattern: '^[0-9a-f]{64}$' });
export const EpochMs = Type.Integer({ minimum: 0, maximum: 8.64e15 });
export const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
export const ShortText = Type.String({ maxLength: 200 });
export const Message = Type.String({ maxLength: 2000 });
export const SemVer = Type.String({ pattern: '^(0|[1-9]\\d*)\\.(0|[1-9]\\d*)\\.(0|[1-9]\\d*)(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?$', maxLength: 64 });
export const ModelName = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' });
export const LabelKey = Type.String({ pattern: '^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$' });
export const LabelValue = Type.String({ pattern: '^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$' });
// additionalProperties: false, or a key that fails LabelKey would simply escape patternProperties unchecked.
export const Labels = Type.Record(LabelKey, LabelValue, { maxProperties: 64, additionalProperties: false });

// ---------------------------------------------------------------------------------------------
// Signatures and keys

export const KeyId = Type.String({ pattern: '^[0-9a-f]{16}$' });
/** Ed25519 signature (64 bytes) in base64. */
export const SignatureB64 = Type.String({ pattern: '^[A-Za-z0-9+/]{86}==$' });
/** Ed25519 public key (32 bytes) in base64. */
export const PublicKeyB64 = Type.String({ pattern: '^[A-Za-z0-9+/]{43}=$' });
export const Signature = closed({ keyId: KeyId, sig: SignatureB64 });
export const Signatures = Type.Array(Signature, { minItems: 1, maxItems: 8 });

/** Revoked key ids a keyring carries (the newest; older ones have long expired). */
export const KEYRING_REVOKED_LIMIT = 64;
export const KeyRole = Type.Union([Type.Literal('release'), Type.Literal('director')]);
export const KeyringKey = closed({ keyId: KeyId, role: KeyRole, publicKey: PublicKeyB64, expiresAt: EpochMs });
/**
 * The list of online keys, signed by the root key (DESIGN §3). A new version replaces the
 * previous one (devices accept versions only upward). `revoked` names keys that once were listed
 * and must never verify again (cumulative, newest kept); `securityFloor` is the lowest manifest
 * `releaseCounter` a device may install (absent: 0). Both are optional so that keyrings signed
 * before they existed keep verifying.
 */
export const Keyring = closed({
  version: Type.Integer({ minimum: 1 }),
  issuedAt: EpochMs,
  expiresAt: EpochMs,
  keys: Type.Array(KeyringKey, { minItems: 1, maxItems: 32 }),
  revoked: Type.Optional(Type.Array(KeyId, { maxItems: KEYRING_REVOKED_LIMIT })),
  securityFloor: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
});
export const SignedKeyring = closed({ keyring: Keyring, signatures: Signatures });

// ---------------------------------------------------------------------------------------------
// Bundle manifest

export const TensorType = Type.String({ maxLength: 32 });
export const TensorSpec = closed({
  name: Type.String({ minLength: 1, maxLength: 128 }),
  type: TensorType,
  /** Fixed sizes as integers, symbolic (batch) dimensions as their name. */
  dims: Type.Array(Type.Union([Type.Integer({ minimum: 0 }), Type.String({ maxLength: 64 })]), { maxItems: 8 }),
});
export const BundleFile = closed({
  role: Type.Literal('model'),
  path: Type.String({ pattern: '^[A-Za-z0-9._-]{1,128}$' }),
  digest: Sha256Hex,
  size: Type.Integer({ minimum: 1, maximum: 2 ** 31 }),
  mediaType: Type.Literal('application/onnx'),
});
/** Sections later capabilities fill in; open objects so that older agents keep parsing newer manifests. */
const Section = Type.Record(Type.String(), Type.Unknown());
export const Manifest = closed({
  schema: Type.Literal('cairn.bundle/v1'),
  name: ModelName,
  version: SemVer,
  /** Monotonic over all releases of the hub; the security floor compares against it. */
  releaseCounter: Type.Integer({ minimum: 1 }),
  createdAt: EpochMs,
  files: Type.Array(BundleFile, { minItems: 1, maxItems: 1 }),
  inputs: Type.Array(TensorSpec, { minItems: 1, maxItems: 16 }),
  outputs: Type.Array(TensorSpec, { minItems: 1, maxItems: 16 }),
  description: Type.Optional(Message),
  compatibility: closed({ minAgentVersion: SemVer }),
  features: Type.Optional(Section),
  quantization: Type.Optional(Section),
  driftReference: Type.Optional(Section),
  health: Type.Optional(Section),
  lineage: Type.Optional(Section),
});
export const SignedManifest = closed({ manifest: Manifest, signatures: Signatures });

// ---------------------------------------------------------------------------------------------
// Desired state (hub → agent, retained)

/**
 * What one device must run. Signed by a director key from the embedded, root-signed keyring.
 * `bundle: null` asks the device to run no model.
 */
export const DesiredDocument = closed({
  deviceId: DeviceId,
  seq: Seq,
  issuedAt: EpochMs,
  expiresAt: EpochMs,
  deploymentId: Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' }),
  keyring: SignedKeyring,
  bundle: Type.Union([SignedManifest, Type.Null()]),
});
export const SignedDesired = closed({ document: DesiredDocument, signatures: Signatures });

// ---------------------------------------------------------------------------------------------
// Agent → hub

export const PresenceOnline = closed({
  online: Type.Literal(true),
  agentVersion: SemVer,
  epoch: Seq,
  ts: EpochMs,
});
export const PresenceOffline = closed({
  online: Type.Literal(false),
  epoch: Seq,
  ts: Type.Optional(EpochMs),
});
export const Presence = Type.Union([PresenceOnline, PresenceOffline]);

/** Agent deployment phases (DESIGN §4). */
export const DEPLOYMENT_PHASES = ['received', 'downloading', 'verifying', 'probing', 'trial', 'committed', 'rolled_back', 'failed'] as const;
export const DeploymentPhase = Type.Enum(DEPLOYMENT_PHASES);

export const ActiveBundle = closed({ name: ModelName, version: SemVer, digest: Sha256Hex, deploymentId: Type.String({ maxLength: 64 }) });
export const DeploymentStatus = closed({
  deploymentId: Type.String({ maxLength: 64 }),
  seq: Seq,
  phase: DeploymentPhase,
  digest: Type.Union([Sha256Hex, Type.Null()]),
  reason: Type.Optional(ShortText),
  message: Type.Optional(Message),
});
export const HardwareFacts = closed({
  platform: ShortText,
  arch: ShortText,
  cpus: Type.Integer({ minimum: 0 }),
  memoryMb: Type.Integer({ minimum: 0 }),
  node: ShortText,
});
export const Reported = closed({
  agentVersion: SemVer,
  ts: EpochMs,
  labels: Labels,
  hardware: HardwareFacts,
  active: Type.Union([ActiveBundle, Type.Null()]),
  deployment: Type.Union([DeploymentStatus, Type.Null()]),
  lastDesiredSeq: Seq,
  keyringVersion: Type.Integer({ minimum: 0 }),
});

/** A model input feature's name, as drift references and telemetry carry it. */
export const FeatureName = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$' });
export const DRIFT_STATUSES = ['ok', 'warn', 'alert'] as const;
/** PSI with the empty-bin floor is bounded (about 18.4 for 1e-4); 100 leaves room. */
const PsiValue = Type.Number({ minimum: 0, maximum: 100 });
/**
 * The device's drift over its sliding window (agent `drift-monitor.ts`): PSI of each input
 * feature's histogram and of the predicted-class distribution against the device's baseline, on
 * the bins of the active manifest's drift reference. Compact numbers only, never data. PSI is
 * null until the window holds enough samples (and a baseline exists); `features` then is empty.
 * `status` compares max(predictionPsi, maxFeaturePsi) with the manifest's thresholds (default
 * 0.1 warn, 0.25 alert). Rollout quality gates read exactly these names.
 */
export const DriftSummary = closed({
  windowMs: Type.Integer({ minimum: 1, maximum: 86_400_000 }),
  samples: Type.Integer({ minimum: 0 }),
  predictionPsi: Type.Union([PsiValue, Type.Null()]),
  maxFeaturePsi: Type.Union([PsiValue, Type.Null()]),
  maxFeature: Type.Union([FeatureName, Type.Null()]),
  /** PSI per feature, rounded to 4 decimals; only features that had samples. */
  features: Type.Record(FeatureName, PsiValue, { maxProperties: 1024, additionalProperties: false }),
  status: Type.Enum(DRIFT_STATUSES),
});

const Millis = Type.Number({ minimum: 0, maximum: 3.6e6 });
export const LatencySummary = closed({ p50: Millis, p95: Millis, p99: Millis, max: Millis });
export const Telemetry = closed({
  /** Per-device counter; the hub stores each (device, seq) once. */
  seq: Seq,
  ts: EpochMs,
  intervalMs: Type.Integer({ minimum: 1, maximum: 86_400_000 }),
  inferences: Type.Integer({ minimum: 0 }),
  errors: Type.Integer({ minimum: 0 }),
  latencyMs: Type.Union([LatencySummary, Type.Null()]),
  rssMb: Type.Number({ minimum: 0, maximum: 1e6 }),
  cpuPct: Type.Number({ minimum: 0, maximum: 100_000 }),
  active: Type.Union([ActiveBundle, Type.Null()]),
  /** The agent's durable outbox: records waiting, and telemetry records its bound ever dropped. */
  outbox: Type.Optional(closed({ depth: Type.Integer({ minimum: 0 }), dropped: Type.Integer({ minimum: 0 }) })),
  /** Only while the active model's manifest carries a drift reference. */
  drift: Type.Optional(DriftSummary),
});

export const EVENT_TYPES = ['deployment', 'desired_rejected', 'inference_error', 'maintenance_alert'] as const;
/** What a maintenance rule saw: the machine, the fault the model predicts, and the windows that prove it. */
export const MaintenanceAlert = closed({
  machine: ShortText,
  faultClass: ShortText,
  /** Mean probability of `faultClass` over the windows that met the threshold. */
  confidence: Type.Number({ minimum: 0, maximum: 1 }),
  /** The rule, e.g. "p(outer_race) >= 0.8 in 3 of the last 5 windows". */
  rule: ShortText,
  /** The evidence: each recent window's time and probability of `faultClass`. */
  windows: Type.Array(closed({ ts: EpochMs, probability: Type.Number({ minimum: 0, maximum: 1 }) }), { maxItems: 64 }),
  model: closed({ name: ModelName, version: SemVer, digest: Sha256Hex }),
});
export const DeviceEvent = closed({
  eventId: Type.String({ pattern: '^[A-Za-z0-9_-]{8,64}$' }),
  ts: EpochMs,
  type: Type.Enum(EVENT_TYPES),
  deploymentId: Type.Optional(Type.String({ maxLength: 64 })),
  seq: Type.Optional(Seq),
  phase: Type.Optional(DeploymentPhase),
  digest: Type.Optional(Sha256Hex),
  reason: Type.Optional(ShortText),
  message: Type.Optional(Message),
  alert: Type.Optional(MaintenanceAlert),
});

export const BlobRequest = closed({
  digest: Sha256Hex,
  from: Type.Integer({ minimum: 0 }),
  count: Type.Integer({ minimum: 1, maximum: 32 }),
});

/** JSON header of a binary blob/res frame; `error` frames carry no bytes. */
export const BlobFrameHeader = closed({
  digest: Sha256Hex,
  index: Type.Integer({ minimum: 0 }),
  total: Type.Integer({ minimum: 0 }),
  error: Type.Optional(ShortText),
});

// ---------------------------------------------------------------------------------------------
// Commands (both directions)

export const Transaction = Type.String({ pattern: '^[A-Za-z0-9_-]{1,64}$' });
export const COMMANDS = ['rollback', 'capture', 'reload'] as const;
export const Command = closed({
  transaction: Transaction,
  command: Type.Enum(COMMANDS),
  args: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
});
export const CommandResult = closed({
  transaction: Transaction,
  ok: Type.Boolean(),
  error: Type.Optional(Message),
  result: Type.Optional(Type.Unknown()),
});

export type TSchemaAny = TSchema;
export type KeyRoleT = Static<typeof KeyRole>;
export type KeyringKeyT = Static<typeof KeyringKey>;
export type KeyringT = Static<typeof Keyring>;
export type SignedKeyringT = Static<typeof SignedKeyring>;
export type SignatureT = Static<typeof Signature>;
export type TensorSpecT = Static<typeof TensorSpec>;
export type ManifestT = Static<typeof Manifest>;
export type SignedManifestT = Static<typeof SignedManifest>;
export type DesiredDocumentT = Static<typeof DesiredDocument>;
export type SignedDesiredT = Static<typeof SignedDesired>;
export type PresenceT = Static<typeof Presence>;
export type DeploymentPhaseT = Static<typeof DeploymentPhase>;
export type ActiveBundleT = Static<typeof ActiveBundle>;
export type DeploymentStatusT = Static<typeof DeploymentStatus>;
export type HardwareFactsT = Static<typeof HardwareFacts>;
export type ReportedT = Static<typeof Reported>;
export type LatencySummaryT = Static<typeof LatencySummary>;
export type TelemetryT = Static<typeof Telemetry>;
export type DriftSummaryT = Static<typeof DriftSummary>;
export type DriftStatusT = (typeof DRIFT_STATUSES)[number];
export type DeviceEventT = Static<typeof DeviceEvent>;
export type MaintenanceAlertT = Static<typeof MaintenanceAlert>;
export type EventTypeT = (typeof EVENT_TYPES)[number];
export type BlobRequestT = Static<typeof BlobRequest>;
export type BlobFrameHeaderT = Static<typeof BlobFrameHeader>;
export type CommandT = Static<typeof Command>;
export type CommandResultT = Static<typeof CommandResult>;
export type LabelsT = Static<typeof Labels>;
