// A real webhook receiver: an HTTP server on a free port that records every request and answers as the test
// says (a status, or never).
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  /** Date.now() when the body had arrived. */
  at: number;
  /** The status it was answered with, once answered. */
  answered?: number;
}

type Reply = number | 'hang' | { status: number; body?: string; headers?: Record<string, string> };

/** The answer to the `n`th request (from 0): a status, a whole answer, or 'hang' to never answer; now or later. */
export type Answer = (n: number, received: Received) => Reply | Promise<Reply>;

export interface Receiver {
  url: string;
  received: Received[];
  /** Distinct `webhook-id`s received. */
  ids(): Set<string>;
  /** Requests answered 2xx for a `webhook-id` already answered 2xx: deliveries received twice. */
  duplicates(): number;
  /** Requests being answered right now, and the most there ever were at once. */
  inFlight: number;
  maxInFlight: number;
  answer: Answer;
  close(): Promise<void>;
}

export async function startReceiver(answer: Answer = () => 204): Promise<Receiver> {
  const received: Received[] = [];
  const receiver: Receiver = {
    url: '',
    received,
    ids: () => new Set(received.map((one) => String(one.headers['webhook-id']))),
    duplicates: () => {
      const succeeded = received.filter((one) => one.answered !== undefined && one.answered < 300);
      return succeeded.length - new Set(succeeded.map((one) => String(one.headers['webhook-id']))).size;
    },
    inFlight: 0,
    maxInFlight: 0,
    answer,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const one: Received = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8'), at: Date.now() };
      const pending = receiver.answer(received.length, one);
      received.push(one);
      receiver.maxInFlight = Math.max(receiver.maxInFlight, ++receiver.inFlight);
      res.on('close', () => receiver.inFlight--);
      void Promise.resolve(pending).then((reply) => {
        if (reply === 'hang') return;
        one.answered = typeof reply === 'number' ? reply : reply.status;
        if (typeof reply === 'number') res.writeHead(reply).end();
        else res.writeHead(reply.status, reply.headers ?? {}).end(reply.body ?? '');
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  receiver.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return receiver;
}
