/**
 * Certificates for TLS tests, made with the hub's own openssl helpers (cli/certificates.ts): a
 * test CA, the hub's certificate for localhost and 127.0.0.1 signed by it, a device client
 * certificate signed by it, and a second, unrelated CA (the "wrong CA"). Valid for two days, in
 * a temp directory removed when the test ends.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { createCertificateAuthority, issueCertificate } from '@cairn/hub/cli/certificates.js';

export interface TlsFixtures {
  dir: string;
  ca: string;
  hubCert: string;
  hubKey: string;
  deviceCert: string;
  deviceKey: string;
  otherCa: string;
}

export function makeTlsFixtures(t: TestContext): TlsFixtures {
  const dir = mkdtempSync(join(tmpdir(), 'cairn-tls-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const ca = createCertificateAuthority(dir, 'ca', 2);
  const other = createCertificateAuthority(dir, 'other-ca', 2);
  const hub = issueCertificate(dir, { ca: 'ca', name: 'hub', commonName: 'localhost', days: 2, usage: 'server' });
  const device = issueCertificate(dir, { ca: 'ca', name: 'device', commonName: 'tls-dev-1', days: 2, usage: 'client' });
  return { dir, ca: ca.cert, hubCert: hub.cert, hubKey: hub.key, deviceCert: device.cert, deviceKey: device.key, otherCa: other.cert };
}
