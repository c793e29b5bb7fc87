/**
 * The demo's maintenance system: a webhook receiver on 127.0.0.1 that checks each delivery's
 * signature the way README tells receivers to (`verifyWebhook`), drops repeats of a delivery id
 * (delivery is at least once), and hands each new event to the demo, which prints it. It answers
 * 401 to a delivery whose signature does not verify, so the hub would retry it and count it.
 */
import { createServer, type Server } from 'node:http';
import { randomBytes } from 'node:crypto';
import { verifyWebhook } from '../modules/webhooks/webhook-signature.js';

export interface DemoWebhookEvent {
  type: string;
  data: Record<string, unknown>;
}

export interface DemoWebhookReceiver {
  url: string;
  /** The shared secret the hub signs with (random per demo run; never printed). */
  secret: string;
  close(): Promise<void>;
}

const MAX_BODY_BYTES = 1024 * 1024;
/** Delivery ids remembered for deduplication (the newest ones). */
const REMEMBERED_DELIVERIES = 10_000;

export async function startDemoWebhookReceiver(onEvent: (event: DemoWebhookEvent) => void): Promise<DemoWebhookReceiver> {
  const secret = randomBytes(32).toString('base64url');
  const seen = new Set<string>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) req.destroy();
      else chunks.push(chunk);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const header = (name: string) => String(req.headers[name] ?? '');
      if (!verifyWebhook(secret, header('x-cairn-timestamp'), body, header('x-cairn-signature'), Date.now())) {
        res.writeHead(401).end();
        return;
      }
      res.writeHead(204).end();
      const delivery = header('x-cairn-delivery');
      if (seen.has(delivery)) return;
      seen.add(delivery);
      if (seen.size > REMEMBERED_DELIVERIES) seen.delete(seen.values().next().value!);
      try {
        const parsed = JSON.parse(body.toString('utf8')) as { type?: unknown; data?: unknown };
        if (typeof parsed.type === 'string' && typeof parsed.data === 'object' && parsed.data !== null) onEvent({ type: parsed.type, data: parsed.data as Record<string, unknown> });
      } catch {
        // A signed body that is not JSON is the hub's bug, not the receiver's: acknowledged, not shown.
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/cairn`,
    secret,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
