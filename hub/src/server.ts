/**
 * startHub(config): builds the hub and starts listening for HTTP and MQTT. The admin token and
 * password are never logged; only the paths of the files that hold them.
 */
import type { AddressInfo } from 'node:net';
import { buildHub, type BuildHubOptions, type Hub } from './app.js';
import { tlsEnabled, type HubConfig } from './infra/config.js';

export interface RunningHub extends Hub {
  httpUrl: string;
  mqttUrl: string;
  close(): Promise<void>;
}

export async function startHub(config: HubConfig, options: BuildHubOptions = {}): Promise<RunningHub> {
  const hub = await buildHub(config, options);
  const tls = tlsEnabled(config);
  try {
    let mqttUrl: string;
    if (hub.broker.kind === 'embedded') {
      const mqtt: AddressInfo = await hub.broker.listen(config.mqtt.port, config.mqtt.host);
      // Agents learn the broker address from GET /api/v1/trust; with port 0 it is only known now.
      if (config.mqtt.port === 0 && !config.mqtt.publicUrl) config.mqtt.port = mqtt.port;
      mqttUrl = `${tls ? 'mqtts' : 'mqtt'}://${formatHost(mqtt.address)}:${mqtt.port}`;
    } else {
      // Before listen(): the modules' start-up publishes (retained desired documents) go to a connected broker.
      await hub.broker.start();
      mqttUrl = hub.broker.url;
    }
    await hub.app.listen({ port: config.http.port, host: config.http.host });
    const http = hub.app.server.address() as AddressInfo;
    const httpUrl = `${tls ? 'https' : 'http'}://${formatHost(http.address)}:${http.port}`;
    const listeners = hub.broker.kind === 'embedded' ? ([[config.http.host, 'HTTP'], [config.mqtt.host, 'MQTT']] as const) : ([[config.http.host, 'HTTP']] as const);
    for (const [host, what] of listeners) {
      if (!tls && !isLoopback(host)) hub.ctx.logger.warn({ host }, `${what} listens beyond loopback without TLS: credentials and traffic can be read on the network; set tls.cert and tls.key`);
    }
    hub.ctx.logger.info({ http: httpUrl, mqtt: mqttUrl, dataDir: config.dataDir, adminTokenFile: hub.adminToken.tokenFile, adminPasswordFile: hub.adminPasswordFile }, 'hub listening');
    return { ...hub, httpUrl, mqttUrl, close: () => hub.app.close() };
  } catch (err) {
    await hub.app.close();
    throw err;
  }
}

const formatHost = (address: string) => (address.includes(':') ? `[${address}]` : address);
const isLoopback = (host: string) => host === 'localhost' || host.startsWith('127.') || host === '::1';
