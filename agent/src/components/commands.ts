/**
 * Commands from the hub (`cmd`, answered on `cmd/res` with the caller's `transaction`). This
 * agent version implements none of them yet (rollback, capture and reload arrive with slots
 * and captures): every valid command gets an error reply, so the caller never waits in vain.
 */
import type { Logger } from 'pino';
import { decodePayload, type CommandT } from '@cairn/shared';
import type { Connection } from './connection.js';
import type { DropCounter } from './drop-counter.js';

type Handler = (command: CommandT) => Promise<unknown>;

export class CommandHandler {
  /** Dispatch table: one entry per implemented command. */
  private readonly handlers: Partial<Record<CommandT['command'], Handler>> = {};

  constructor(
    private readonly connection: Connection,
    private readonly drops: DropCounter,
    private readonly logger: Logger,
  ) {}

  onCommand(payload: Buffer): void {
    const decoded = decodePayload('cmd', payload);
    if (!decoded.ok) {
      this.drops.drop('cmd', decoded.reason, decoded.message);
      return;
    }
    const command = decoded.value;
    const handler = this.handlers[command.command];
    const reply = handler
      ? handler(command).then(
          (result) => ({ transaction: command.transaction, ok: true, ...(result === undefined ? {} : { result }) }),
          (err: Error) => ({ transaction: command.transaction, ok: false, error: err.message.slice(0, 2000) }),
        )
      : Promise.resolve({ transaction: command.transaction, ok: false, error: `command '${command.command}' is not supported by this agent version` });
    void reply.then((value) => this.connection.publish('cmd/res', value)).catch((err: Error) => this.logger.debug({ err }, 'cmd/res not acknowledged'));
  }
}
