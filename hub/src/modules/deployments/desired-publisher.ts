/**
 * Publishes desired documents one at a time, in the order asked, and always the device's
 * *current* row: however deployments, rollouts and re-signing interleave, the last document the
 * broker retains for a device is the newest one in the database. There is one publisher per hub
 * (in the HubContext) for exactly that reason.
 */
import { deviceTopic } from '@cairn/shared';
import type { HubContext } from '../../infra/context.js';

export class DesiredPublisher {
  private tail: Promise<void> = Promise.resolve();
  constructor(private readonly ctx: Pick<HubContext, 'deployments' | 'broker' | 'metrics' | 'bus'>) {}

  publish(deviceIds: readonly string[]): Promise<void> {
    const run = this.tail.then(async () => {
      for (const deviceId of deviceIds) {
        const row = this.ctx.deployments.desiredFor(deviceId);
        if (!row) continue;
        await this.ctx.broker.publish(deviceTopic(deviceId, 'desired'), Buffer.from(row.document), { qos: 1, retain: true });
        this.ctx.metrics.desiredPublished.inc();
        this.ctx.bus.emit('desired.published', { deviceId, seq: row.seq, deploymentId: row.deploymentId });
      }
    });
    this.tail = run.catch(() => undefined);
    return run;
  }
}
