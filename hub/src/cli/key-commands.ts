/**
 * `cairn keys …`: the trust hierarchy. `init --offline` works on the hub's data directory (hub
 * stopped); the others talk to the hub. With the root key offline, a change comes back from the
 * hub as an unsigned keyring draft, which this command signs with `--root-key PATH` here, on the
 * operator's machine, and sends back: the root seed never travels.
 */
import { signDocument, type KeyringT } from '@cairn/shared';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { initOfflineRoot, readRootKey } from '../infra/keys.js';
import type { CliKit } from './operator-commands.js';
import type { ClientOptions, HubClient } from './hub-client.js';
import { table } from './output.js';

type Common = ClientOptions & { json?: boolean };

interface KeysInfo {
  rootKeyId: string;
  rootPublicKey: string;
  rootOnline: boolean;
  keyringVersion: number;
  keyringExpiresAt: string;
  securityFloor: number;
  keys: { keyId: string; role: string; publicKey: string; expiresAt: number; status: string }[];
  revoked: string[];
  draft: KeyringT | null;
}

/** Raised for a change the root must sign when no `--root-key` was given. */
export class RootKeyNeeded extends Error {}

/**
 * Applies one keyring change through the hub: prepared (and installed, when the hub holds the
 * root), or prepared here-signed-installed with the root key file. Returns the version in force.
 */
export async function applyKeyChange(api: HubClient, change: { rotate: string } | { revoke: string } | { floor: number }, rootKeyFile?: string): Promise<{ version: number; installed: 'by the hub' | 'with the root key file' }> {
  const prepared = await api.request<{ draft: KeyringT; installed: boolean; keyringVersion: number }>('POST', '/api/v1/keys/changes', change);
  if (prepared.installed) return { version: prepared.keyringVersion, installed: 'by the hub' };
  if (!rootKeyFile) throw new RootKeyNeeded(`the root key is offline: keyring version ${prepared.draft.version} is prepared; run the command again with --root-key PATH to sign and install it`);
  const root = readRootKey(rootKeyFile);
  const info = await api.request<KeysInfo>('GET', '/api/v1/keys');
  if (info.rootKeyId !== root.keyId) throw new RootKeyNeeded(`${rootKeyFile} holds root key ${root.keyId}, the hub's root is ${info.rootKeyId}`);
  const installed = await api.request<KeysInfo>('PUT', '/api/v1/keys/keyring', { keyring: prepared.draft, signatures: [signDocument(prepared.draft, root)] });
  return { version: installed.keyringVersion, installed: 'with the root key file' };
}

export function registerKeyCommands(program: Command, { clientOptions, client, print }: CliKit): void {
  const keys = program.command('keys').description('the trust hierarchy: root, keyring, release and director keys, security floor');

  keys
    .command('init')
    .description("make the root key offline (hub stopped): on a new data directory create the root at --root-key-out and the first keyring; on one whose root is online, move the root there. The hub keeps only root.pub")
    .addOption(new Option('--offline', 'required: the root key leaves the hub').makeOptionMandatory())
    .requiredOption('--root-key-out <path>', 'where to write the root key (a new file, mode 0600): then move it to offline storage')
    .option('--data <dir>', "the hub's data directory (default $CAIRN_DATA_DIR or ./data)")
    .option('--json', 'machine-readable output')
    .action((o: { rootKeyOut: string; data?: string; json?: boolean }) => {
      const result = initOfflineRoot(o.data ?? process.env.CAIRN_DATA_DIR ?? './data', o.rootKeyOut, Date.now());
      print(o, result, () => `${result.created ? 'created' : 'moved'} root key ${result.rootKeyId} to ${o.rootKeyOut}; the hub keeps only its public half.\nKeep that file offline; keyring changes (rotate, revoke, floor) need it with --root-key.`);
    });

  clientOptions(keys.command('show').description('root key to pin on devices, the keyring (keys, roles, expiries, revocations, floor); never private material')).action(async (o: Common) => {
    const info = await client(o).request<KeysInfo>('GET', '/api/v1/keys');
    print(o, info, () =>
      [
        `root ${info.rootKeyId} (${info.rootOnline ? 'online: on the hub' : 'offline'})  publicKey ${info.rootPublicKey}`,
        `keyring v${info.keyringVersion}, expires ${info.keyringExpiresAt}, security floor ${info.securityFloor}`,
        table(
          info.keys.filter((k) => k.role !== 'root').map((k) => ({ ...k, expires: new Date(k.expiresAt).toISOString() })),
          ['role', 'keyId', 'status', 'expires', 'publicKey'],
        ),
        ...(info.revoked.length > 0 ? [`revoked: ${info.revoked.join(', ')}`] : []),
        ...(info.draft ? [`draft v${info.draft.version} waits for the root signature (repeat the change with --root-key)`] : []),
        'Pin the root publicKey on devices as rootPublicKey in agent.yaml.',
      ].join('\n'),
    );
  });

  const rootKey = (cmd: Command) => cmd.option('--root-key <path>', 'the offline root key file, to sign the new keyring here');
  const change = async (o: Common & { rootKey?: string }, body: Parameters<typeof applyKeyChange>[1], what: string) => {
    const result = await applyKeyChange(client(o), body, o.rootKey);
    print(o, result, () => `${what}: keyring version ${result.version} installed ${result.installed}; live desired documents are re-signed with it`);
  };
  clientOptions(rootKey(keys.command('rotate').description('a new key for a role; a new keyring version signed by root').addOption(new Option('--role <role>').choices(['release', 'director']).makeOptionMandatory()))).action(
    (o: Common & { role: string; rootKey?: string }) => change(o, { rotate: o.role }, `rotated the ${o.role} key`),
  );
  clientOptions(rootKey(keys.command('revoke <keyId>').description('remove a key from the keyring and revoke it: devices refuse its signatures (key_revoked); a signing key is replaced'))).action(
    (keyId: string, o: Common & { rootKey?: string }) => change(o, { revoke: keyId }, `revoked ${keyId}`),
  );
  clientOptions(rootKey(keys.command('floor <releaseCounter>').description('the signed security floor: devices refuse bundles with a lower releaseCounter (below_floor); it only rises'))).action(
    (value: string, o: Common & { rootKey?: string }) => change(o, { floor: nonNegativeInt(value) }, `security floor ${value}`),
  );
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('must be a non-negative integer');
  return n;
}
