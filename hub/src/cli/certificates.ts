/**
 * X.509 certificates made with the `openssl` CLI (node:crypto makes keys, not certificates):
 * a self-signed certificate authority, and certificates it issues. Used by `cairn demo --tls`
 * and by the TLS tests. P-256 keys; keep the directory private (the keys are not encrypted).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const NEW_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(dir: string, args: string[]): void {
  try {
    execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    const detail = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'the openssl command is not installed' : String((err as { stderr?: Buffer }).stderr ?? (err as Error).message).trim();
    throw new Error(`openssl ${args[0]} failed: ${detail}`);
  }
}

/** `<dir>/<name>.pem` and `<name>.key`: a self-signed CA valid for `days`. */
export function createCertificateAuthority(dir: string, name: string, days: number): { cert: string; key: string } {
  openssl(dir, ['req', '-x509', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', String(days), '-subj', `/CN=${name}`]);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}

export interface IssueOptions {
  /** The CA's base name in `dir` (its `.pem` and `.key`). */
  ca: string;
  name: string;
  commonName: string;
  days: number;
  /** `server` for localhost and 127.0.0.1 (subjectAltName), `client` for mutual TLS. */
  usage: 'server' | 'client';
}

/** `<dir>/<name>.pem` and `<name>.key`, signed by the CA. */
export function issueCertificate(dir: string, { ca, name, commonName, days, usage }: IssueOptions): { cert: string; key: string } {
  openssl(dir, ['req', ...NEW_KEY, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${commonName}`]);
  const ext = usage === 'server' ? 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n';
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', String(days), '-extfile', `${name}.ext`]);
  return { cert: join(dir, `${name}.pem`), key: join(dir, `${name}.key`) };
}
