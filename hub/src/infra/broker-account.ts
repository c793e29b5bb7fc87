/**
 * The hub's own accounts on an external broker (`mqtt.broker`): two fixed usernames, one for
 * each of its two connections (external-broker.ts: `inbound` receives device messages in a
 * persistent session, `outbound` publishes to devices), sharing one random password kept in
 * `<data>/broker-password` (0600), created on first need, never logged.
 *
 * The usernames start with `_`, which no device id can (shared/src/protocol/topics.ts), so no
 * device can ever enroll under the hub's name. With Mosquitto's `use_username_as_clientid` a
 * username is also the connection's client id, the key of the inbound persistent session.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { newPassword, writeSecretFile } from './auth.js';

export const HUB_BROKER_USERNAMES = { inbound: '_cairn-hub', outbound: '_cairn-hub-out' } as const;
export const BROKER_PASSWORD_FILE = 'broker-password';

export interface BrokerAccount {
  usernames: typeof HUB_BROKER_USERNAMES;
  password: string;
  /** Where the password lives (safe to show). */
  file: string;
}

export function loadOrCreateBrokerAccount(dataDir: string): BrokerAccount {
  const file = join(dataDir, BROKER_PASSWORD_FILE);
  if (!existsSync(file)) writeSecretFile(file, newPassword());
  const password = readFileSync(file, 'utf8').trim();
  if (password.length === 0) throw new Error(`${file} is empty; delete it to make a new hub broker password (then regenerate the broker config)`);
  return { usernames: HUB_BROKER_USERNAMES, password, file };
}
