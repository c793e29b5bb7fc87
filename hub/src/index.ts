export { buildHub, type Hub, type BuildHubOptions } from './app.js';
export { startHub, type RunningHub } from './server.js';
export { loadHubConfig, ConfigError, type HubConfig, type HubConfigInput } from './infra/config.js';
