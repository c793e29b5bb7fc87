/**
 * `cairn user …`, `cairn token …`, `cairn audit …` and `cairn whoami`: operators, their API
 * tokens and the audit log. Secrets the hub generates (a password, a token) are printed once, to
 * stdout, and nowhere else.
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { join } from 'node:path';
import { verifyAuditDatabase } from '../modules/audit/audit-verify.js';
import { ROLES } from '../modules/operators/access.js';
import type { ClientOptions, HubClient } from './hub-client.js';
import { table } from './output.js';

type Common = ClientOptions & { json?: boolean };

export interface CliKit {
  clientOptions: (cmd: Command) => Command;
  client: (o: Common) => HubClient;
  print: (o: Common, json: unknown, text: () => string) => void;
}

interface UserInfo {
  username: string;
  role: string;
  disabled: boolean;
  createdAt: string;
  createdBy: string;
}
interface TokenInfo {
  id: string;
  name: string;
  owner: string;
  role: string;
  scopes: string[] | null;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}
interface AuditInfo {
  id: number;
  at: string;
  actor: string;
  credential: string | null;
  sourceIp: string | null;
  action: string;
  target: string | null;
  before: unknown;
  after: unknown;
}

const roleOption = (flags: string, description: string) => new Option(flags, description).choices(ROLES);

/** `30d`, `12h`, `90m`, `3600s` → seconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+)([smhd])$/.exec(text.trim());
  if (!match) throw new InvalidArgumentError('use a number and a unit: 90m, 12h, 30d');
  return Number(match[1]) * { s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as 's' | 'm' | 'h' | 'd'];
}

/** `ID:HASH` as printed by `cairn audit head` or logged by the hub (`audit appended`). */
function parseAnchor(text: string): { id: number; hash: string } {
  const match = /^(\d+):([0-9a-f]{64})$/.exec(text.trim());
  if (!match) throw new InvalidArgumentError('use ID:HASH, as printed by `cairn audit head`');
  return { id: Number(match[1]), hash: match[2]! };
}

export function registerOperatorCommands(program: Command, { clientOptions, client, print }: CliKit): void {
  clientOptions(program.command('whoami').description('who the CLI acts as: user, effective role, token')).action(async (o: Common) => {
    const me = await client(o).request<{ username: string; role: string; via: string; tokenId?: string; scopes: string[] | null }>('GET', '/api/v1/session');
    print(o, me, () => `${me.username} (${me.role}) via ${me.via}${me.tokenId ? ` ${me.tokenId}` : ''}${me.scopes ? `, scopes ${me.scopes.join(',')}` : ''}`);
  });

  const user = program.command('user').description('operators of the hub (admin)');
  clientOptions(user.command('add <username>').description('create a user; prints a generated password once').addOption(roleOption('--role <role>', 'viewer, operator or admin').makeOptionMandatory())).action(
    async (username: string, o: Common & { role: string }) => {
      const created = await client(o).request<{ user: UserInfo; password: string }>('POST', '/api/v1/users', { username, role: o.role });
      print(o, created, () => `created ${created.user.username} (${created.user.role})\npassword: ${created.password}\nIt is shown only now; the user signs in to the console with it.`);
    },
  );
  clientOptions(user.command('list').description('users and their roles')).action(async (o: Common) => {
    const { users } = await client(o).request<{ users: UserInfo[] }>('GET', '/api/v1/users');
    print(o, users, () => table(users.map((u) => ({ ...u, status: u.disabled ? 'disabled' : 'active' })), ['username', 'role', 'status', 'createdAt', 'createdBy']));
  });
  const patchUser = (username: string, o: Common, body: Record<string, unknown>) => client(o).request<UserInfo>('PATCH', `/api/v1/users/${encodeURIComponent(username)}`, body);
  clientOptions(user.command('role <username> <role>').description('change a user\'s role (viewer, operator, admin)')).action(async (username: string, role: string, o: Common) => {
    if (!(ROLES as readonly string[]).includes(role)) throw new InvalidArgumentError(`role must be one of ${ROLES.join(', ')}`);
    const u = await patchUser(username, o, { role });
    print(o, u, () => `${u.username} is now ${u.role}`);
  });
  for (const [name, disabled] of [['disable', true], ['enable', false]] as const) {
    clientOptions(user.command(`${name} <username>`).description(disabled ? 'disable a user: their sessions end and their tokens stop working' : 'enable a disabled user')).action(
      async (username: string, o: Common) => {
        const u = await patchUser(username, o, { disabled });
        print(o, u, () => `${u.username} is ${u.disabled ? 'disabled' : 'enabled'}`);
      },
    );
  }
  clientOptions(user.command('password <username>').description('replace a user\'s password with a generated one, printed once')).action(async (username: string, o: Common) => {
    const { password } = await client(o).request<{ password: string }>('POST', `/api/v1/users/${encodeURIComponent(username)}/password`);
    print(o, { username, password }, () => `new password for ${username}: ${password}\nIt is shown only now; their console sessions have ended.`);
  });

  const token = program.command('token').description('API tokens for the CLI and automation');
  clientOptions(
    token
      .command('create')
      .description('create a token for yourself (never above your own role); prints it once')
      .requiredOption('--name <name>', 'what the token is for')
      .addOption(roleOption('--role <role>', 'default: your role'))
      .option('--scope <scope...>', 'limit the token to these scopes (e.g. devices:read models:read)')
      .option('--expires <duration>', 'lifetime: 90m, 12h, 30d', parseDuration),
  ).action(async (o: Common & { name: string; role?: string; scope?: string[]; expires?: number }) => {
    const body = { name: o.name, ...(o.role ? { role: o.role } : {}), ...(o.scope ? { scopes: o.scope } : {}), ...(o.expires ? { ttlSeconds: o.expires } : {}) };
    const created = await client(o).request<{ token: TokenInfo; secret: string }>('POST', '/api/v1/tokens', body);
    print(o, created, () => `created ${created.token.id} (${created.token.role}${created.token.scopes ? `, ${created.token.scopes.join(',')}` : ''}), expires ${created.token.expiresAt}\n${created.secret}\nIt is shown only now: export CAIRN_TOKEN=… or keep it in a secret store.`);
  });
  clientOptions(token.command('list').description('your tokens (every token for an admin)')).action(async (o: Common) => {
    const { tokens } = await client(o).request<{ tokens: TokenInfo[] }>('GET', '/api/v1/tokens');
    print(o, tokens, () => table(tokens.map((t) => ({ ...t, scopes: t.scopes?.join(',') ?? 'all', status: t.revokedAt ? 'revoked' : 'active' })), ['id', 'name', 'owner', 'role', 'scopes', 'status', 'expiresAt', 'lastUsedAt']));
  });
  clientOptions(token.command('revoke <id>').description('revoke a token at once')).action(async (id: string, o: Common) => {
    const t = await client(o).request<TokenInfo>('DELETE', `/api/v1/tokens/${encodeURIComponent(id)}`);
    print(o, t, () => `revoked ${t.id} (${t.name}, ${t.owner})`);
  });

  const audit = program.command('audit').description('the append-only, hash-chained audit log');
  clientOptions(
    audit
      .command('list')
      .description('newest entries first')
      .option('--actor <actor>', 'a username, or system, anonymous, device:<id>')
      .option('--action <action>', 'e.g. deployment.create, model.approve, session.login_failed')
      .option('--target <target>', 'e.g. model:pdm@1.0.0, or a prefix ending in *')
      .option('--from <time>', 'ISO 8601 time, inclusive')
      .option('--to <time>', 'ISO 8601 time, exclusive')
      .option('--limit <n>', 'how many', '50'),
  ).action(async (o: Common & { actor?: string; action?: string; target?: string; from?: string; to?: string; limit: string }) => {
    const query = new URLSearchParams({ limit: o.limit });
    for (const key of ['actor', 'action', 'target', 'from', 'to'] as const) if (o[key] !== undefined) query.set(key, o[key]!);
    const { entries } = await client(o).request<{ entries: AuditInfo[] }>('GET', `/api/v1/audit?${query}`);
    print(o, entries, () => table(entries.map((e) => ({ ...e, from: e.sourceIp, change: JSON.stringify(e.after ?? null) })), ['id', 'at', 'actor', 'from', 'action', 'target', 'change']));
  });
  clientOptions(audit.command('head').description('the newest entry\'s id and hash: keep it somewhere else as an anchor for `audit verify --anchor`')).action(async (o: Common) => {
    const head = await client(o).request<{ id: number; hash: string }>('GET', '/api/v1/audit/head');
    print(o, head, () => `${head.id}:${head.hash}`);
  });
  audit
    .command('verify')
    .description("recompute the hash chain from the hub's database file (on the hub's machine); exits 1 naming the first bad row")
    .option('--data <dir>', "the hub's data directory (default $CAIRN_DATA_DIR or ./data)")
    .option('--anchor <id:hash>', 'an earlier head kept off the hub: that row must still have that hash', parseAnchor)
    .option('--json', 'machine-readable output')
    .action((o: { data?: string; anchor?: { id: number; hash: string }; json?: boolean }) => {
      const report = verifyAuditDatabase(join(o.data ?? process.env.CAIRN_DATA_DIR ?? './data', 'cairn.db'), o.anchor);
      if (o.json) console.log(JSON.stringify(report, null, 2));
      else if (report.ok) console.log(`audit log intact: ${report.rows} entries${report.last ? `, head ${report.last.id}:${report.last.hash}` : ''}${o.anchor ? `, anchor ${o.anchor.id} matches` : ''}`);
      else console.error(`cairn: audit log damaged at row ${report.problem!.id} (${report.problem!.reason}): ${report.problem!.message}`);
      if (!report.ok) process.exitCode = 1;
    });
}
