/**
 * The v1 MQTT topic tree. Every topic in Cairn is built and parsed here and nowhere else.
 *
 *   topic      = "cairn/v1/dev/" device-id "/" kind
 *   device-id  = alnum *63( alnum / "." / "_" / "-" )      ; 1..64 chars, never "+", "#", "/"
 *   kind       = "presence" / "reported" / "telemetry" / "events" / "blob/req" / "cmd/res"   ; agent → hub
 *              / "desired" / "blob/res" / "cmd"                                              ; hub → agent
 *
 * A device id can never contain an MQTT wildcard or a level separator, so a topic built for
 * one device can never match, or escape into, another device's subtree.
 */

export const TOPIC_PREFIX = 'cairn/v1/dev';

/** Kinds a device publishes (agent → hub). */
export const AGENT_TO_HUB_KINDS = ['presence', 'reported', 'telemetry', 'events', 'blob/req', 'cmd/res'] as const;
/** Kinds the hub publishes to one device (hub → agent). */
export const HUB_TO_AGENT_KINDS = ['desired', 'blob/res', 'cmd'] as const;

export type AgentToHubKind = (typeof AGENT_TO_HUB_KINDS)[number];
export type HubToAgentKind = (typeof HUB_TO_AGENT_KINDS)[number];
export type TopicKind = AgentToHubKind | HubToAgentKind;

export const DEVICE_ID_MAX_LENGTH = 64;
const DEVICE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function isValidDeviceId(id: unknown): id is string {
  return typeof id === 'string' && DEVICE_ID_PATTERN.test(id);
}

export class InvalidDeviceIdError extends Error {
  readonly code = 'CAIRN_INVALID_DEVICE_ID';
  constructor(id: unknown) {
    super(`invalid device id ${JSON.stringify(String(id)).slice(0, 80)}: 1-64 characters of A-Z a-z 0-9 . _ -, starting with a letter or digit`);
  }
}

const KINDS: ReadonlySet<string> = new Set<string>([...AGENT_TO_HUB_KINDS, ...HUB_TO_AGENT_KINDS]);

export function isAgentToHubKind(kind: string): kind is AgentToHubKind {
  return (AGENT_TO_HUB_KINDS as readonly string[]).includes(kind);
}

export function isHubToAgentKind(kind: string): kind is HubToAgentKind {
  return (HUB_TO_AGENT_KINDS as readonly string[]).includes(kind);
}

/** Builds the topic of one device. Throws InvalidDeviceIdError for an id that could escape its prefix. */
export function deviceTopic(deviceId: string, kind: TopicKind): string {
  if (!isValidDeviceId(deviceId)) throw new InvalidDeviceIdError(deviceId);
  return `${TOPIC_PREFIX}/${deviceId}/${kind}`;
}

/** The subscription the hub uses to receive one kind from every device (single-level wildcard). */
export function fleetSubscription(kind: AgentToHubKind): string {
  return `${TOPIC_PREFIX}/+/${kind}`;
}

export interface ParsedTopic {
  deviceId: string;
  kind: TopicKind;
}

/**
 * Parses a concrete topic (no wildcards) of the v1 tree; null for anything else.
 * Grammar: see the head of this file.
 */
export function parseDeviceTopic(topic: string): ParsedTopic | null {
  const prefix = `${TOPIC_PREFIX}/`;
  if (!topic.startsWith(prefix)) return null;
  const rest = topic.slice(prefix.length);
  const slash = rest.indexOf('/');
  if (slash <= 0) return null;
  const deviceId = rest.slice(0, slash);
  const kind = rest.slice(slash + 1);
  if (!isValidDeviceId(deviceId) || !KINDS.has(kind)) return null;
  return { deviceId, kind: kind as TopicKind };
}
