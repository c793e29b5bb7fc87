/**
 * `cairn broker config --mosquitto`: writes the files an external Mosquitto needs for the
 * enrolled fleet (infra/mosquitto-config.ts says what they contain and why), from the hub's
 * database opened read-only, on the hub's machine. Each file is replaced atomically, so a broker
 * reloading (SIGHUP) at any moment reads either the old or the new file.
 */
import Database from 'better-sqlite3';
import { type Command, InvalidArgumentError } from 'commander';
import { existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { loadOrCreateBrokerAccount } from '../infra/broker-account.js';
import { mosquittoAclFile, mosquittoConf, mosquittoPasswordFile, type MosquittoListener } from '../infra/mosquitto-config.js';
import { mosquittoPasswordHash } from '../infra/mosquitto-password.js';
import { readBrokerAccounts, type BrokerAccounts } from '../modules/enrollment/enrollment.repository.js';

export interface MosquittoFilesOptions {
  dataDir: string;
  outDir: string;
  port: number;
  host?: string;
  tls?: MosquittoListener['tls'];
}

export interface MosquittoFiles {
  conf: string;
  passwordFile: string;
  aclFile: string;
  devices: number;
  /** Active devices left out: they enrolled before the hub stored broker hashes. */
  needReEnrollment: string[];
}

export function writeMosquittoFiles({ dataDir, outDir, port, host, tls }: MosquittoFilesOptions): MosquittoFiles {
  const out = resolve(outDir);
  const persistenceDir = join(out, 'persistence');
  mkdirSync(persistenceDir, { recursive: true, mode: 0o700 });
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const hub = loadOrCreateBrokerAccount(dataDir);
  const accounts = readAccounts(join(dataDir, 'cairn.db'));
  const fleet = { hub: { usernames: Object.values(hub.usernames), brokerHash: mosquittoPasswordHash(hub.password) }, devices: accounts.accounts };
  const files = { conf: join(out, 'mosquitto.conf'), passwordFile: join(out, 'password_file'), aclFile: join(out, 'acl_file') };
  writeAtomically(files.passwordFile, mosquittoPasswordFile(fleet));
  writeAtomically(files.aclFile, mosquittoAclFile(fleet));
  writeAtomically(files.conf, mosquittoConf({ port, ...(host ? { host } : {}), ...(tls ? { tls } : {}), passwordFile: files.passwordFile, aclFile: files.aclFile, persistenceDir }));
  return { ...files, devices: accounts.accounts.length, needReEnrollment: accounts.needReEnrollment };
}

/** A hub that never ran has no database and no devices: the broker then admits only the hub (start the broker first). */
function readAccounts(file: string): BrokerAccounts {
  if (!existsSync(file)) return { accounts: [], needReEnrollment: [] };
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return readBrokerAccounts(db);
  } finally {
    db.close();
  }
}

/** Owner-only (the password file holds hashes), written beside the target and renamed over it. */
function writeAtomically(file: string, text: string): void {
  const temp = `${file}.tmp-${process.pid}`;
  writeFileSync(temp, text, { mode: 0o600, flush: true });
  renameSync(temp, file);
}

export function registerBrokerCommands(program: Command): void {
  const broker = program.command('broker').description('files for an external MQTT broker (cairn hub --broker URL)');
  broker
    .command('config')
    .description("write the broker's password file, ACL file and config for the enrolled fleet (on the hub's machine); re-run and reload the broker after enrollments and revocations")
    .requiredOption('--mosquitto', 'Mosquitto 2 files (the only kind so far)')
    .option('--data <dir>', "the hub's data directory (default $CAIRN_DATA_DIR or ./data)")
    .option('--out <dir>', 'where to write them', './mosquitto')
    .option('--port <port>', 'the listener port in mosquitto.conf', port, 1883)
    .option('--host <address>', 'the address the listener binds (default: all)')
    .option('--tls-cert <file>', "MQTT over TLS: the broker's certificate (PEM)")
    .option('--tls-key <file>', 'and its key')
    .option('--tls-ca <file>', 'the CA device client certificates chain to')
    .option('--require-client-cert', 'mutual TLS: refuse devices without a certificate from --tls-ca')
    .option('--json', 'machine-readable output')
    .action((o: { data?: string; out: string; port: number; host?: string; tlsCert?: string; tlsKey?: string; tlsCa?: string; requireClientCert?: boolean; json?: boolean }) => {
      if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw new InvalidArgumentError('give both --tls-cert and --tls-key');
      if (o.requireClientCert && (!o.tlsCa || !o.tlsCert)) throw new InvalidArgumentError('--require-client-cert needs --tls-cert, --tls-key and --tls-ca');
      const tls = o.tlsCert && o.tlsKey ? { cert: resolve(o.tlsCert), key: resolve(o.tlsKey), ...(o.tlsCa ? { ca: resolve(o.tlsCa) } : {}), requireClientCert: o.requireClientCert === true } : undefined;
      const result = writeMosquittoFiles({ dataDir: o.data ?? process.env.CAIRN_DATA_DIR ?? './data', outDir: o.out, port: o.port, ...(o.host ? { host: o.host } : {}), ...(tls ? { tls } : {}) });
      if (o.json) return console.log(JSON.stringify(result, null, 2));
      console.log(`wrote ${result.conf}, ${result.passwordFile}, ${result.aclFile}: the hub and ${result.devices} device(s)`);
      if (result.needReEnrollment.length > 0) {
        console.log(`left out ${result.needReEnrollment.length} device(s) enrolled before this hub stored broker password hashes; enroll them again: ${result.needReEnrollment.join(', ')}`);
      }
      console.log(`run: mosquitto -c ${result.conf}   (already running: kill -HUP <pid> to reload the password and ACL files)`);
    });
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('must be a port number');
  return n;
}
