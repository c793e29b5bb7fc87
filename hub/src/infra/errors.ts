/**
 * The hub's catalogue of coded errors. Every error an API client can see is created here, so
 * codes are stable and documented in one place. The root error handler (app.ts) turns a
 * HubError into `{statusCode, code, error, message}`.
 */
export class HubError extends Error {
  constructor(
    readonly code: string,
    readonly statusCode: number,
    message: string,
    /** Response headers that belong to the answer (`retry-after` on a 429). */
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'HubError';
  }
}

export const Errors = {
  badRequest: (message: string) => new HubError('CAIRN_BAD_REQUEST', 400, message),
  badSelector: (message: string) => new HubError('CAIRN_BAD_SELECTOR', 400, message),
  badModelRef: (ref: string) => new HubError('CAIRN_BAD_MODEL_REF', 400, `model reference ${JSON.stringify(ref)} is not of the form name@version`),
  unauthorized: () => new HubError('CAIRN_UNAUTHORIZED', 401, 'a valid API token is required (Authorization: Bearer <token>)'),
  modelNotFound: (ref: string) => new HubError('CAIRN_MODEL_NOT_FOUND', 404, `model ${ref} not found`),
  deviceNotFound: (ids: string[]) => new HubError('CAIRN_DEVICE_NOT_FOUND', 404, `unknown device${ids.length > 1 ? 's' : ''}: ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ', …' : ''}`),
  deploymentNotFound: (id: string) => new HubError('CAIRN_DEPLOYMENT_NOT_FOUND', 404, `deployment ${id} not found`),
  modelExists: (ref: string) => new HubError('CAIRN_MODEL_EXISTS', 409, `model ${ref} already exists; versions are immutable, push a new version`),
  noTargets: (what: string) => new HubError('CAIRN_NO_TARGETS', 400, `no device matches ${what}`),
  invalidModel: (message: string) => new HubError('CAIRN_ONNX_INVALID', 422, message),
  uploadNotFound: (digest: string) => new HubError('CAIRN_UPLOAD_NOT_FOUND', 404, `no uploaded file with digest ${digest}; upload it first (POST /api/v1/uploads)`),
  badCalibration: (message: string) => new HubError('CAIRN_BAD_CALIBRATION', 400, message),
  quantizationGate: (failures: string[]) => new HubError('CAIRN_QUANTIZATION_GATE', 422, `the int8 model fails its gate, nothing was published: ${failures.join('; ')}`),
  badHealthPolicy: (message: string) => new HubError('CAIRN_HEALTH_POLICY_INVALID', 422, `${message} (devices would refuse the bundle with reason health_policy)`),
  manifestTooLarge: (size: number, limit: number) => new HubError('CAIRN_MANIFEST_TOO_LARGE', 422, `the manifest would be ${size} bytes; devices accept desired documents up to a budget that leaves ${limit} bytes for it (trim lineage, health probes or the drift reference)`),
  badJson: (message: string) => new HubError('CAIRN_BAD_JSON', 400, message),
  unsupportedMediaType: (type: string | undefined) => new HubError('CAIRN_UNSUPPORTED_MEDIA_TYPE', 415, `content type ${JSON.stringify(type ?? '(none)')} is not accepted here; send application/json`),
  payloadTooLarge: (limit: number) => new HubError('CAIRN_PAYLOAD_TOO_LARGE', 413, `body exceeds ${limit} bytes`),
  enrollSignature: () => new HubError('CAIRN_ENROLL_BAD_SIGNATURE', 401, 'the enrollment claim is not signed by the key it names'),
  enrollClockSkew: (ts: number, now: number) =>
    new HubError('CAIRN_ENROLL_CLOCK_SKEW', 400, `the claim's ts ${new Date(ts).toISOString()} is more than 10 minutes from the hub's clock (${new Date(now).toISOString()}); fix the device clock`),
  enrollReplayed: () => new HubError('CAIRN_ENROLL_REPLAYED', 409, 'the claim is not newer than the last one accepted from this device (replayed request?)'),
  enrollKeyMismatch: (id: string) => new HubError('CAIRN_ENROLL_KEY_MISMATCH', 409, `device id ${id} is bound to another key; an operator must forget it first (cairn device forget ${id})`),
  enrollTokenInvalid: () => new HubError('CAIRN_ENROLL_TOKEN_INVALID', 401, 'the enrollment token is not valid (unknown, wrong, expired, revoked or used up)'),
  alreadyEnrolled: (id: string) => new HubError('CAIRN_ALREADY_ENROLLED', 409, `device ${id} is already enrolled; enroll again with a token to rotate its credentials`),
  deviceRevoked: (id: string) => new HubError('CAIRN_DEVICE_REVOKED', 403, `device ${id} is revoked; a replacement device needs a new id (or an operator forgets this one)`),
  tooManyPending: (limit: number) => new HubError('CAIRN_ENROLL_PENDING_LIMIT', 429, `${limit} devices already wait for acceptance; accept or forget some first`),
  rateLimited: (what: string) => new HubError('CAIRN_RATE_LIMITED', 429, `too many ${what}; slow down`),
  enrollmentNotFound: (id: string) => new HubError('CAIRN_ENROLLMENT_NOT_FOUND', 404, `no enrollment request from device ${id}`),
  enrollmentState: (id: string, status: string, wanted: string) => new HubError('CAIRN_ENROLLMENT_STATE', 409, `device ${id} is ${status}; this needs ${wanted}`),
  enrollmentTokenNotFound: (id: string) => new HubError('CAIRN_ENROLLMENT_TOKEN_NOT_FOUND', 404, `no active enrollment token ${id}`),

  // Operators, tokens, sessions, approvals (the access decisions themselves are in modules/operators/access.ts).
  badCredentials: () => new HubError('CAIRN_BAD_CREDENTIALS', 401, 'wrong username or password'),
  loginLocked: (retryAfterSeconds: number) =>
    new HubError('CAIRN_LOGIN_LOCKED', 429, `too many failed logins; try again in ${retryAfterSeconds} s`, { 'retry-after': String(retryAfterSeconds) }),
  csrf: (header: string) => new HubError('CAIRN_CSRF', 403, `a console request that changes state must carry the ${header} header`),
  userExists: (username: string) => new HubError('CAIRN_USER_EXISTS', 409, `user ${username} already exists`),
  userNotFound: (username: string) => new HubError('CAIRN_USER_NOT_FOUND', 404, `user ${username} not found`),
  lastAdmin: () => new HubError('CAIRN_LAST_ADMIN', 409, 'this would leave the hub without an enabled admin; make another user admin first'),
  tokenNotFound: (id: string) => new HubError('CAIRN_TOKEN_NOT_FOUND', 404, `token ${id} not found`),
  roleAboveOwn: (field: string, asked: string, own: string) => new HubError('CAIRN_ROLE_ABOVE_OWN', 403, `${field}: a token cannot have role ${asked}, above your own (${own})`),
  scopeAboveOwn: (scopes: string[]) => new HubError('CAIRN_SCOPE_ABOVE_OWN', 403, `scopes: your token does not have ${scopes.join(', ')}, so it cannot grant them`),
  approvalRequired: (ref: string, devices: number, canary: number) =>
    new HubError('CAIRN_APPROVAL_REQUIRED', 409, `${ref} is not approved: it may run on at most ${canary} device(s) (a canary) until an operator other than the one who pushed it approves it (cairn model approve ${ref}); this would make ${devices}`),
  selfApproval: (ref: string) => new HubError('CAIRN_SELF_APPROVAL', 403, `${ref} was pushed by you; another operator must approve it`),
  keyNotFound: (message: string) => new HubError('CAIRN_KEY_NOT_FOUND', 404, message),
  floorLowered: (message: string) => new HubError('CAIRN_FLOOR_LOWERED', 409, message),
  floorStrandsDevices: (floor: number, devices: string[]) =>
    new HubError('CAIRN_FLOOR_STRANDS_DEVICES', 409, `${devices.length} device(s) are assigned a bundle below releaseCounter ${floor} (${devices.slice(0, 10).join(', ')}${devices.length > 10 ? ', …' : ''}); deploy a newer version to them first`),
  belowFloor: (ref: string, releaseCounter: number, floor: number) =>
    new HubError('CAIRN_BELOW_FLOOR', 409, `${ref} has releaseCounter ${releaseCounter}, below the security floor ${floor}; devices would refuse it (below_floor)`),
  noKeyringDraft: (message: string) => new HubError('CAIRN_NO_KEYRING_DRAFT', 409, message),
  keyringNotDraft: (message: string) => new HubError('CAIRN_KEYRING_NOT_DRAFT', 409, message),
  keyringSignature: (message: string) => new HubError('CAIRN_KEYRING_SIGNATURE', 400, message),

  // Alerts and work orders.
  alertNotFound: (id: string) => new HubError('CAIRN_ALERT_NOT_FOUND', 404, `alert ${id} not found`),
  alertState: (id: string, state: string, action: string) => new HubError('CAIRN_ALERT_STATE', 409, `alert ${id} is ${state}; it cannot be ${action}`),
  workOrderNotFound: (id: string) => new HubError('CAIRN_WORK_ORDER_NOT_FOUND', 404, `work order ${id} not found`),
  workOrderState: (id: string, state: string, action: string) => new HubError('CAIRN_WORK_ORDER_STATE', 409, `work order ${id} is ${state}; it cannot be ${action}`),
} as const;

/**
 * The catalogue's error for one that fastify raised itself before a handler ran (a body its
 * parsers refused), so that clients see the hub's codes only; null for anything else.
 */
export function fromFrameworkError(error: { code?: string; statusCode?: number; message: string }, request: { headers: Record<string, string | string[] | undefined>; bodyLimit: number }): HubError | null {
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return Errors.badJson(error.message);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return Errors.unsupportedMediaType(request.headers['content-type']?.toString());
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return Errors.payloadTooLarge(request.bodyLimit);
  }
  const status = error.statusCode;
  return status !== undefined && status >= 400 && status < 500 ? new HubError('CAIRN_BAD_REQUEST', status, error.message) : null;
}
