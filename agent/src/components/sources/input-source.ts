/**
 * The agent's input source, chosen by `source.kind` in the configuration:
 *
 *   simulated  a vibration simulator of this device's machine (simulated-source.ts)
 *   stdin      JSON-lines records on the agent's standard input (line-source.ts)
 *   mqtt       records published to a topic of a local MQTT broker (mqtt-source.ts)
 *   none       only the local API
 *
 * Every source ends in `Pipeline.process`, so the maintenance rules see every window whatever
 * its origin. Record formats are in records.ts.
 */
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { seedFromString } from '@cairn/shared';
import type { SourceConfig } from '../../config.js';
import type { ActiveModel } from '../active-model.js';
import type { Pipeline } from '../pipeline.js';
import { SimulatedSource, type SimulatedSourceStats } from './simulated-source.js';
import { RecordIntake, type RecordIntakeStats } from './record-intake.js';
import { LineSource } from './line-source.js';
import { MqttSource } from './mqtt-source.js';

export interface SourceStats {
  kind: 'simulated' | 'stdin' | 'mqtt';
  /** Records (stdin, mqtt) refused and accepted; the simulator's windows count as accepted. */
  records: RecordIntakeStats;
  /** Simulated source: windows inferred and how many matched the machine's true condition. */
  machine?: SimulatedSourceStats;
  /** MQTT source: the local broker connection, and messages received. */
  broker?: { connected: boolean; subscribed: boolean; messages: number };
}

export interface InputSource {
  start(): void;
  stop(): Promise<void>;
  readonly stats: SourceStats;
  /** The record intake's counts (stdin, mqtt), for the metrics. */
  readonly intake: RecordIntake | null;
}

export interface SourceDeps {
  deviceId: string;
  active: ActiveModel;
  pipeline: Pipeline;
  clock: () => number;
  logger: Logger;
  /** The stream the stdin source reads; default process.stdin. */
  stdin?: Readable;
}

export function createInputSource(config: SourceConfig, deps: SourceDeps): InputSource | null {
  const { active, pipeline, clock, logger } = deps;
  switch (config.kind) {
    case 'none':
      return null;
    case 'simulated': {
      const source = new SimulatedSource({
        intervalMs: config.intervalMs,
        seed: config.seed ?? seedFromString(deps.deviceId),
        machine: {
          ...(config.machine ? { machine: config.machine } : {}),
          ...(config.fault ? { fault: config.fault } : {}),
          ...(config.severity !== undefined ? { severity: config.severity } : {}),
          ...(config.scenario ? { scenario: config.scenario } : {}),
          ...(config.scenarioStartAfterMs !== undefined ? { scenarioStartAfterMs: config.scenarioStartAfterMs } : {}),
          ...(config.simulatedStepMs !== undefined ? { simulatedStepMs: config.simulatedStepMs } : {}),
        },
        clock,
        active,
        pipeline,
        logger,
      });
      return {
        start: () => source.start(),
        stop: async () => source.stop(),
        intake: null,
        get stats(): SourceStats {
          return { kind: 'simulated', records: { accepted: source.count, rejected: {} }, machine: { ...source.stats } };
        },
      };
    }
    case 'stdin': {
      const intake = new RecordIntake({ source: 'stdin', active, pipeline, clock, logger, maxRecordBytes: config.maxRecordBytes });
      const lines = new LineSource({ stream: deps.stdin ?? process.stdin, intake, logger });
      return {
        start: () => lines.start(),
        stop: async () => {
          lines.stop();
          intake.stop();
        },
        intake,
        get stats(): SourceStats {
          return { kind: 'stdin', records: intake.stats };
        },
      };
    }
    case 'mqtt': {
      const intake = new RecordIntake({ source: 'mqtt', active, pipeline, clock, logger, maxQueue: config.maxQueue, maxRecordBytes: config.maxRecordBytes });
      const mqtt = new MqttSource({
        url: config.url,
        topic: config.topic,
        qos: config.qos,
        clientId: `cairn-agent-${deps.deviceId}-source`,
        ...(config.username !== undefined ? { username: config.username } : {}),
        ...(config.password !== undefined ? { password: config.password } : {}),
        intake,
        logger,
      });
      return {
        start: () => mqtt.start(),
        stop: async () => {
          intake.stop();
          await mqtt.stop();
        },
        intake,
        get stats(): SourceStats {
          return { kind: 'mqtt', records: intake.stats, broker: mqtt.stats };
        },
      };
    }
  }
}
