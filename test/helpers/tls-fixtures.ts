/**
 * Certificates for TLS tests, made by the `openssl` CLI (node:crypto cannot make X.509
 * certificates): a test CA, the hub's certificate for localhost and 127.0.0.1 signed by it, a
 * device client certificate signed by it, and a second, unrelated CA (the "wrong CA"). P-256
 * keys, valid for two days. PEM files in a temp directory removed when the test ends.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

export interface TlsFixtures {
  dir: string;
  ca: string;
  hubCert: string;
  hubKey: string;
  deviceCert: string;
  deviceKey: string;
  otherCa: string;
}

const openssl = (dir: string, ...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function selfSignedCa(dir: string, name: string): void {
  openssl(dir, 'req', '-x509', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=${name}`);
}

function signed(dir: string, name: string, cn: string, ext: string): void {
  openssl(dir, 'req', ...newKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`);
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, 'x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', `${name}.ext`);
}

export function makeTlsFixtures(t: TestContext): TlsFixtures {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  selfSignedCa(dir, 'ca');
  selfSignedCa(dir, 'other-ca');
  signed(dir, 'hub', 'localhost', 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n');
  signed(dir, 'device', 'tls-dev-1', 'extendedKeyUsage=clientAuth\n');
  const at = (file: string) => join(dir, file);
  return { dir, ca: at('ca.pem'), hubCert: at('hub.pem'), hubKey: at('hub.key'), deviceCert: at('device.pem'), deviceKey: at('device.key'), otherCa: at('other-ca.pem') };
}
