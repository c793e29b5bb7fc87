import type { InferenceSession } from 'onnxruntime-node';

/** The options the agent's inference worker creates its session with (runtime/inference-worker.ts). */
export const SESSION_OPTIONS: InferenceSession.SessionOptions = { intraOpNumThreads: 1, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential' };
