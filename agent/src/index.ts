export type { ModelRuntime, ModelSession, Tensor, Feeds } from './components/runtime/types.js';
export { createAgent, type Agent, type AgentDeps, type AgentStatus, type AgentTuning } from './agent.js';
export { loadConfig, parseConfig, envName, AgentConfigSchema, type AgentConfig, type LoadConfigOptions } from './config.js';
export { simulateFleet, simDeviceId, simLabels, simMachines, fetchTrust, type Fleet, type FleetOptions } from './sim/fleet.js';
export { AgentError, ConfigError, DeploymentFailure } from './errors.js';
export { AGENT_VERSION } from './version.js';
export { createWorkerRuntime, type WorkerRuntime, type WorkerRuntimeOptions } from './components/runtime/worker-runtime.js';
