/**
 * Broker access control, one named test per denial, each run three times: twice against a hub
 * with its embedded broker:
 *
 * - over an in-memory stream: an mqtt.js client wired to the embedded broker through a duplex
 *   pair (no socket, so the result cannot depend on the network);
 * - with Debian's `mosquitto_pub` / `mosquitto_sub` on the hub's real MQTT port: clients that
 *   share no code with Cairn.
 *
 * and once against a hub that joins a real Mosquitto configured by `cairn broker config
 * --mosquitto` (helpers/mosquitto.ts), again with `mosquitto_pub` / `mosquitto_sub`.
 *
 * The oracle is the hub's own count of denials by action and reason
 * (`cairn_hub_mqtt_denied_total`), plus the CONNACK code for refused connections and, for
 * publishes, that nothing reached the hub's store. Mosquitto's denials are not the hub's to
 * count: there the oracle is the CONNACK (Mosquitto answers 5, not authorised, to every refused
 * login), Mosquitto's own log of each refused publish, and, for subscriptions, that a message the
 * client may not read never reaches it (Mosquitto 2.0 grants every SUBACK and enforces read
 * access on delivery). Cases Mosquitto cannot or need not refuse say why.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import mqtt from 'mqtt';
import { deviceTopic, signEnrollClaim, MAX_JSON_PAYLOAD_BYTES } from '@cairn/shared';
import { startTestHub, type TestHub } from '../helpers/hub.js';
import { waitFor } from '../helpers/wait.js';
import { inMemoryClient } from '../helpers/mqtt-stream.js';

interface Attempt {
  clientId: string;
  username?: string;
  password?: string;
}

/** What a client saw: its CONNACK code (0 = accepted), and for a subscription whether it was granted. */
interface Outcome {
  connack: number;
  subscribed?: boolean;
  /** What a mosquitto client printed (received payloads among it). */
  output?: string;
}

interface Transport {
  name: string;
  /** Connects, then publishes each payload to `topic` (QoS 1) or subscribes to `subscribe`, then disconnects. */
  run(hub: TestHub, who: Attempt, action: { topic: string; payloads: Buffer[] } | { subscribe: string } | null): Promise<Outcome>;
}

const inMemory: Transport = {
  name: 'in-memory stream',
  async run(hub, who, action) {
    const client = inMemoryClient(hub, {
      clientId: who.clientId,
      ...(who.username !== undefined ? { username: who.username } : {}),
      ...(who.password !== undefined ? { password: who.password } : {}),
    });
    try {
      const connack = await new Promise<number>((resolve) => {
        client.once('connect', () => resolve(0));
        // mqtt.js follows a refusal with an abort error: keep listening so that it is not unhandled.
        client.on('error', (err: Error & { code?: unknown }) => resolve(typeof err.code === 'number' ? err.code : -1));
        client.once('close', () => resolve(-1));
      });
      if (connack !== 0 || !action) return { connack };
      if ('subscribe' in action) {
        // mqtt.js 5 rejects a subscription whose SUBACK says 0x80 (failure).
        const granted = await client.subscribeAsync(action.subscribe, { qos: 1 }).catch(() => null);
        return { connack, subscribed: granted !== null && granted.every((g) => g.qos !== 128) };
      }
      const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
      await Promise.race([Promise.allSettled(action.payloads.map((p) => client.publishAsync(action.topic, p, { qos: 1 }))), closed]);
      return { connack };
    } finally {
      client.end(true);
    }
  },
};

const mosquitto: Transport = {
  name: 'mosquitto clients',
  async run(hub, who, action) {
    const port = new URL(hub.mqttUrl).port;
    const args = ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-i', who.clientId, '-q', '1'];
    if (who.username !== undefined) args.push('-u', who.username);
    if (who.password !== undefined) args.push('-P', who.password);
    let output: { code: number; text: string };
    if (action && 'subscribe' in action) {
      // -W: give up after 2 s; -C 1: stop after one message (none comes).
      output = await exec('mosquitto_sub', [...args, '-t', action.subscribe, '-W', '2', '-C', '1']);
    } else if (action && action.payloads.length === 1) {
      output = await exec('mosquitto_pub', [...args, '-t', action.topic, '-s'], action.payloads[0]);
    } else if (action) {
      // -l: one message per stdin line (mosquitto_pub then reconnects after a refusal: the timeout ends it).
      output = await exec('mosquitto_pub', [...args, '-t', action.topic, '-l'], Buffer.concat(action.payloads.map((p) => Buffer.concat([p, Buffer.from('\n')]))));
    } else {
      output = await exec('mosquitto_pub', [...args, '-t', 'cairn/v1/dev/probe/telemetry', '-n']);
    }
    const refused = /Connection Refused: (.+?)\.?$/m.exec(output.text)?.[1];
    const connack = refused === undefined ? 0 : ({ 'identifier rejected': 2, 'bad user name or password': 4, 'not authorised': 5 } as Record<string, number>)[refused] ?? -1;
    const subscribed = action && 'subscribe' in action && connack === 0 ? !/denied/i.test(output.text) : undefined;
    return { connack, ...(subscribed !== undefined ? { subscribed } : {}), output: output.text };
  },
};

/** Runs a client to its end, or kills it after `timeoutMs` (a client that keeps reconnecting after a refusal). */
function exec(command: string, args: string[], stdin?: Buffer, timeoutMs = 4000): Promise<{ code: number; text: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', () => clearTimeout(timer));
    let text = '';
    child.stdout.on('data', (d) => (text += d));
    child.stderr.on('data', (d) => (text += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, text }));
    child.stdin.on('error', () => undefined); // the broker may close first; the result says why
    child.stdin.end(stdin);
  });
}

async function denied(hub: TestHub, action: string, reason: string): Promise<number> {
  const text = (await hub.api<string>('GET', '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith('cairn_hub_mqtt_denied_total{') && l.includes(`action="${action}"`) && l.includes(`reason="${reason}"`));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** A low publish rate so that the flood case is quick; every other case uses its own device ids and stays far below it. */
const RATE = { perSec: 2, burst: 10 };

async function hubFor(t: TestContext): Promise<TestHub> {
  return startTestHub(t, { mqtt: { rateLimit: RATE } });
}

const telemetry = (seq: number) =>
  Buffer.from(JSON.stringify({ seq, ts: Date.now(), intervalMs: 10000, inferences: 5, errors: 0, latencyMs: { p50: 1, p95: 2, p99: 3, max: 4 }, rssMb: 50, cpuPct: 3, active: null }));

interface Case {
  name: string;
  action: 'connect' | 'publish' | 'subscribe';
  reason: string;
  /** The CONNACK code a refused connection gets. */
  connack?: number;
  /** Against a Mosquitto-backed hub: for subscriptions, a topic whose retained message must not reach the client; or why the case does not apply. */
  mosquitto: { forbidden?: string } | { notApplicable: string };
  run(hub: TestHub, transport: Transport): Promise<Outcome>;
}

const enrolled = async (hub: TestHub, id: string): Promise<Attempt> => {
  const { username, password } = await hub.enroll(id);
  return { clientId: id, username, password };
};

const cases: Case[] = [
  {
    name: 'an anonymous client (no username, no password) is refused at CONNECT',
    mosquitto: {},
    action: 'connect',
    reason: 'anonymous',
    connack: 4,
    run: async (hub, tr) => tr.run(hub, { clientId: 'anon-1' }, null),
  },
  {
    name: 'a wrong password is refused at CONNECT',
    mosquitto: {},
    action: 'connect',
    reason: 'bad_credentials',
    connack: 4,
    run: async (hub, tr) => tr.run(hub, { ...(await enrolled(hub, 'dev-pw')), password: 'not-the-password-at-all' }, null),
  },
  {
    name: 'a device that never enrolled is refused at CONNECT',
    mosquitto: {},
    action: 'connect',
    reason: 'not_enrolled',
    connack: 5,
    run: async (hub, tr) => tr.run(hub, { clientId: 'ghost-1', username: 'ghost-1', password: 'guessed-password-123' }, null),
  },
  {
    name: 'a pending device (not yet accepted by an operator) is refused at CONNECT',
    mosquitto: {},
    action: 'connect',
    reason: 'not_enrolled',
    connack: 5,
    run: async (hub, tr) => {
      const claim = signEnrollClaim('pending-1', randomBytes(32), Date.now());
      const res = await fetch(`${hub.httpUrl}/api/v1/enroll`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(claim) });
      assert.equal(res.status, 202);
      return tr.run(hub, { clientId: 'pending-1', username: 'pending-1', password: 'guessed-password-123' }, null);
    },
  },
  {
    name: 'a revoked device is refused at CONNECT with its once-valid password',
    mosquitto: {},
    action: 'connect',
    reason: 'revoked',
    connack: 5,
    run: async (hub, tr) => {
      const who = await enrolled(hub, 'dev-rev');
      assert.equal((await tr.run(hub, who, null)).connack, 0, 'accepted before the revocation');
      assert.equal((await hub.api('POST', '/api/v1/devices/dev-rev/revoke')).status, 200);
      await hub.admit(); // an external broker learns it when its files are regenerated and reloaded
      return tr.run(hub, who, null);
    },
  },
  {
    name: 'a username other than the client id is refused at CONNECT',
    mosquitto: { notApplicable: 'use_username_as_clientid: Mosquitto replaces the client id by the username, so the client acts as its own account and cannot take over another session' },
    action: 'connect',
    reason: 'username_mismatch',
    connack: 4,
    run: async (hub, tr) => tr.run(hub, { ...(await enrolled(hub, 'dev-u')), clientId: 'dev-v' }, null),
  },
  {
    name: 'a client id that is not a device id is refused at CONNECT',
    mosquitto: {},
    action: 'connect',
    reason: 'bad_client_id',
    connack: 2,
    run: async (hub, tr) => tr.run(hub, { clientId: 'bad+id#', username: 'bad+id#', password: 'whatever-password' }, null),
  },
  {
    name: "publishing to another device's topic is refused and stores nothing",
    mosquitto: {},
    action: 'publish',
    reason: 'foreign_topic',
    run: async (hub, tr) => {
      await enrolled(hub, 'victim-1');
      const outcome = await tr.run(hub, await enrolled(hub, 'dev-f'), { topic: deviceTopic('victim-1', 'telemetry'), payloads: [telemetry(1)] });
      assert.equal(hub.ctx.telemetry.range('victim-1', 0, Date.now() + 1, 10).length, 0, 'nothing stored for the victim');
      return outcome;
    },
  },
  {
    name: 'publishing a desired document to itself (forging the hub) is refused',
    mosquitto: {},
    action: 'publish',
    reason: 'wrong_direction',
    run: async (hub, tr) => tr.run(hub, await enrolled(hub, 'dev-d'), { topic: deviceTopic('dev-d', 'desired'), payloads: [Buffer.from('{}')] }),
  },
  {
    name: 'publishing to $SYS is refused',
    mosquitto: {},
    action: 'publish',
    reason: 'sys_topic',
    run: async (hub, tr) => tr.run(hub, await enrolled(hub, 'dev-s'), { topic: '$SYS/broker/uptime', payloads: [Buffer.from('1')] }),
  },
  {
    name: 'publishing outside the cairn/v1 tree is refused',
    mosquitto: {},
    action: 'publish',
    reason: 'unknown_topic',
    run: async (hub, tr) => tr.run(hub, await enrolled(hub, 'dev-o'), { topic: 'plant/line-a/anything', payloads: [Buffer.from('1')] }),
  },
  {
    name: 'a payload above the protocol limit is refused',
    mosquitto: {},
    action: 'publish',
    reason: 'too_large',
    run: async (hub, tr) => tr.run(hub, await enrolled(hub, 'dev-l'), { topic: deviceTopic('dev-l', 'events'), payloads: [Buffer.alloc(MAX_JSON_PAYLOAD_BYTES + 1, 0x61)] }),
  },
  {
    name: 'a publish flood beyond the per-client rate is refused',
    mosquitto: { notApplicable: 'Mosquitto has no per-client message rate limit; mqtt.rateLimit applies to the embedded broker only' },
    action: 'publish',
    reason: 'rate_limited',
    run: async (hub, tr) => tr.run(hub, await enrolled(hub, 'dev-flood'), { topic: deviceTopic('dev-flood', 'telemetry'), payloads: Array.from({ length: 40 }, (_, i) => telemetry(i + 1)) }),
  },
  {
    name: "subscribing to another device's desired documents is refused",
    mosquitto: { forbidden: deviceTopic('victim-2', 'desired') },
    action: 'subscribe',
    reason: 'foreign_topic',
    run: async (hub, tr) => tr.run(hub, await enrolled(hub, 'dev-sf'), { subscribe: deviceTopic('victim-2', 'desired') }),
  },
  {
    name: 'a wildcard subscription is refused',
    mosquitto: { forbidden: deviceTopic('victim-w', 'desired') },
    action: 'subscribe',
    reason: 'wildcard',
    run: async (hub, tr) => tr.run(hub, await enrolled(hub, 'dev-w'), { subscribe: 'cairn/v1/dev/+/desired' }),
  },
  {
    name: 'a $share subscription is refused',
    mosquitto: { notApplicable: 'Mosquitto implements $share (aedes does not, hence its refusal) and checks the ACL on the topic after the group: a device can share only its own topics' },
    action: 'subscribe',
    reason: 'shared_subscription',
    run: async (hub, tr) => tr.run(hub, await enrolled(hub, 'dev-sh'), { subscribe: '$share/g/cairn/v1/dev/dev-sh/desired' }),
  },
  {
    name: "subscribing to its own agent→hub topic (reading what it sends) is refused",
    mosquitto: { forbidden: deviceTopic('dev-sw', 'telemetry') },
    action: 'subscribe',
    reason: 'wrong_direction',
    run: async (hub, tr) => tr.run(hub, await enrolled(hub, 'dev-sw'), { subscribe: deviceTopic('dev-sw', 'telemetry') }),
  },
];

for (const transport of [inMemory, mosquitto]) {
  describe(`broker denials over ${transport.name}`, () => {
    for (const [index, c] of cases.entries()) {
      test(`deny: ${c.name}`, async (t) => {
        const hub = await hubFor(t);
        const before = await denied(hub, c.action, c.reason);
        const outcome = await c.run(hub, transport);
        if (c.action === 'connect') assert.equal(outcome.connack, c.connack, `CONNACK for ${c.reason}`);
        else assert.equal(outcome.connack, 0, 'the device itself may connect');
        if (c.action === 'subscribe') assert.equal(outcome.subscribed, false, 'SUBACK refuses the filter');
        await waitFor(`${c.action}/${c.reason} counted`, async () => (await denied(hub, c.action, c.reason)) > before);
        // The hub keeps serving: a legitimate device still connects and publishes.
        const okId = `ok-${index}`;
        const ok = await transport.run(hub, await enrolled(hub, okId), { topic: deviceTopic(okId, 'telemetry'), payloads: [telemetry(1)] });
        assert.equal(ok.connack, 0);
      });
    }
  });
}

/** Mosquitto's log lines for refused publishes (`-v`): ACL denials and payloads above message_size_limit. */
const refusedPublishes = (log: string) => log.split('\n').filter((l) => / (Denied|Dropped too large) PUBLISH from /.test(l)).length;
const FORBIDDEN = 'must-not-be-delivered';

describe('broker denials against a Mosquitto-backed hub (mosquitto clients)', () => {
  for (const [index, c] of cases.entries()) {
    const expected = c.mosquitto;
    if ('notApplicable' in expected) {
      test(`does not apply: ${c.name}`, { skip: expected.notApplicable }, () => undefined);
      continue;
    }
    test(`deny: ${c.name}`, async (t) => {
      const hub = await startTestHub(t, { broker: 'mosquitto' });
      const log = hub.mosquitto!.log;
      if (expected.forbidden) {
        await hub.ctx.broker.publish(expected.forbidden, Buffer.from(FORBIDDEN), { qos: 1, retain: true });
        // The control: the message the client must not get is retained in the broker.
        await waitFor('the forbidden message is at the broker', () => log().split('\n').some((l) => l.includes('Received PUBLISH from _cairn-hub-out (d0, q1, r1, ') && l.includes(`'${expected.forbidden}'`)));
      }
      const outcome = await c.run(hub, mosquitto);
      if (c.action === 'connect') assert.equal(outcome.connack, 5, 'Mosquitto refuses the login');
      else assert.equal(outcome.connack, 0, 'the device itself may connect');
      // Each test has its own broker: any refused publish in its log is this case's.
      if (c.action === 'publish') await waitFor('Mosquitto logged the refused publish', () => refusedPublishes(log()) > 0);
      if (c.action === 'subscribe') assert.ok(!outcome.output!.includes(FORBIDDEN), 'nothing it may not read reached it');
      // The hub keeps serving through the broker: a legitimate device's message is stored.
      const okId = `ok-${index}`;
      const ok = await mosquitto.run(hub, await enrolled(hub, okId), { topic: deviceTopic(okId, 'telemetry'), payloads: [telemetry(1)] });
      assert.equal(ok.connack, 0);
      await waitFor(`${okId}'s telemetry stored`, () => hub.ctx.telemetry.range(okId, 0, Date.now() + 1, 10).length === 1);
    });
  }
});

test('revoking a device closes its live session at once (real socket) and refuses its reconnects', async (t) => {
  const hub = await hubFor(t);
  const who = await enrolled(hub, 'dev-live');
  const client = mqtt.connect(hub.mqttUrl, { clientId: who.clientId, username: who.username!, password: who.password!, protocolVersion: 4, reconnectPeriod: 0 });
  t.after(() => client.end(true));
  client.on('error', () => undefined);
  await new Promise((r) => client.once('connect', r));
  const closed = new Promise<void>((r) => client.once('close', () => r()));
  assert.equal((await hub.api('POST', '/api/v1/devices/dev-live/revoke')).status, 200);
  await closed;
  assert.equal((await inMemory.run(hub, who, null)).connack, 5);
});
