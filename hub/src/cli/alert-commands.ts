/**
 * `cairn alert list|ack|resolve` and `cairn workorder list|ack|done`: the operator's side of
 * alerts and maintenance work orders (hub/src/modules/alerts/). `--json` prints the API views.
 */
import { Option, type Command } from 'commander';
import type { CliKit } from './operator-commands.js';
import { table } from './output.js';

type Common = { hub?: string; token?: string; data?: string; json?: boolean };

/** What the CLI reads of an alert (modules/alerts/alert-view.ts). */
interface AlertInfo {
  id: string;
  deviceId: string;
  cause: string;
  severity: string;
  state: string;
  summary: string;
  openedAt: string;
  lastSeenAt: string;
  occurrences: number;
  workOrderId: string | null;
}

interface WorkOrderInfo {
  id: string;
  alertId: string;
  deviceId: string;
  machine: string;
  faultClass: string;
  confidence: number;
  state: string;
  openedAt: string;
  model: { name: string; version: string };
}

const query = (params: Record<string, string | undefined>): string => {
  const q = new URLSearchParams(Object.entries(params).filter((e): e is [string, string] => e[1] !== undefined));
  return q.size > 0 ? `?${q}` : '';
};

export function registerAlertCommands(program: Command, { clientOptions, client, print }: CliKit): void {
  const alert = program.command('alert').description('alerts: drift, offline, rollback, ingest gaps, maintenance');
  clientOptions(
    alert
      .command('list')
      .description('alerts, newest first')
      .addOption(new Option('--state <state>', 'only this state').choices(['open', 'acknowledged', 'resolved']))
      .addOption(new Option('--cause <cause>', 'only this cause').choices(['drift', 'offline', 'rollback', 'ingest_gap', 'maintenance']))
      .option('--device <id>', 'only this device')
      .option('--limit <n>', 'at most this many', '100'),
  ).action(async (o: Common & { state?: string; cause?: string; device?: string; limit: string }) => {
    const { alerts } = await client(o).request<{ alerts: AlertInfo[] }>('GET', `/api/v1/alerts${query({ state: o.state, cause: o.cause, deviceId: o.device, limit: o.limit })}`);
    print(o, alerts, () => table(alerts.map((a) => ({ ...a, seen: a.occurrences })), ['id', 'deviceId', 'cause', 'severity', 'state', 'seen', 'openedAt', 'summary']));
  });
  for (const [verb, action, description] of [
    ['ack', 'acknowledge', 'acknowledge an open alert (someone is on it)'],
    ['resolve', 'resolve', 'resolve an alert by hand (a drift alert then needs the drift to persist again to reopen)'],
  ] as const) {
    clientOptions(alert.command(`${verb} <id>`).description(description)).action(async (id: string, o: Common) => {
      const a = await client(o).request<AlertInfo>('POST', `/api/v1/alerts/${encodeURIComponent(id)}/${action}`);
      print(o, a, () => `${a.id} (${a.cause} on ${a.deviceId}): ${a.state}`);
    });
  }

  const workorder = program.command('workorder').description('maintenance work orders opened by devices’ maintenance alerts');
  clientOptions(
    workorder
      .command('list')
      .description('work orders, newest first')
      .addOption(new Option('--state <state>', 'only this state').choices(['open', 'acknowledged', 'done']))
      .option('--device <id>', 'only this device')
      .option('--limit <n>', 'at most this many', '100'),
  ).action(async (o: Common & { state?: string; device?: string; limit: string }) => {
    const { workOrders } = await client(o).request<{ workOrders: WorkOrderInfo[] }>('GET', `/api/v1/work-orders${query({ state: o.state, deviceId: o.device, limit: o.limit })}`);
    print(o, workOrders, () =>
      table(
        workOrders.map((w) => ({ ...w, confidence: w.confidence.toFixed(2), model: `${w.model.name}@${w.model.version}` })),
        ['id', 'deviceId', 'machine', 'faultClass', 'confidence', 'state', 'model', 'openedAt'],
      ),
    );
  });
  for (const [verb, action, description] of [
    ['ack', 'acknowledge', 'acknowledge an open work order (the work is planned)'],
    ['done', 'done', 'close a work order (the work is done); its alert is resolved with it'],
  ] as const) {
    clientOptions(workorder.command(`${verb} <id>`).description(description)).action(async (id: string, o: Common) => {
      const w = await client(o).request<WorkOrderInfo>('POST', `/api/v1/work-orders/${encodeURIComponent(id)}/${action}`);
      print(o, w, () => `${w.id} (${w.faultClass} on ${w.machine}): ${w.state}`);
    });
  }
}
