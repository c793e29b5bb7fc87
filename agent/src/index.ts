export type { ModelRuntime, ModelSession, Tensor, Feeds } from './components/runtime/types.js';
