/**
 * A real HTTP webhook receiver on 127.0.0.1 for tests. `answer(n)` decides the reply to the
 * n-th request (0-based): a status code, or `hold` to leave the request open (an attempt in
 * flight). Every request is recorded with its headers and raw body.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { TestContext } from 'node:test';

export interface ReceivedHook {
  headers: IncomingMessage['headers'];
  body: string;
  /** The status answered; null when held. */
  status: number | null;
}

export async function startWebhookReceiver(t: TestContext, answer: (n: number) => number | 'hold') {
  const received: ReceivedHook[] = [];
  const held: ServerResponse[] = [];
  const receiver = { url: '', received, answer };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reply = receiver.answer(received.length);
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), status: reply === 'hold' ? null : reply });
      if (reply === 'hold') held.push(res);
      else res.writeHead(reply).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const res of held) res.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  receiver.url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
  return receiver;
}
