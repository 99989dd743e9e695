// The webhook part of `make bench`: how long after a File settles its event reaches a receiver, with the API and
// one worker as production runs them, a receiver in this process, and files uploaded at a steady rate (what a
// client waiting for its notification sees, not a saturated run).
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { newSigningSecret } from '../../core/webhooks/signing.js';
import { atSteadyRate, quantile, uploader } from './uploads.js';

export interface WebhookBenchTools {
  quick: boolean;
  scenario(message: string): Promise<void>;
  /** The production API on a database of its own, and one worker beside it, both with these settings. */
  startApiAndWorker(name: string, env: Record<string, string>): Promise<{ url: string; databaseUrl: string }>;
  sql<T>(databaseUrl: string, text: string, values?: unknown[]): Promise<T[]>;
  /** One multipart upload body per file. */
  uploadBody(n: number): Buffer;
  boundary: string;
  round: (value: number, digits?: number) => number;
}

export interface WebhookBench {
  files: number;
  files_per_s: number;
  /** From the File's processed_at to the receiver having the request's body, in ms. */
  latency_ms: { p50: number; p90: number; p99: number; max: number };
}

const RATE_PER_S = 50;

export async function benchWebhooks(tools: WebhookBenchTools): Promise<WebhookBench> {
  const received = new Map<string, number>();
  const receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const at = Date.now();
      const event = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: { id: string } };
      if (!received.has(event.data.id)) received.set(event.data.id, at);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  try {
    const service = await tools.startApiAndWorker('webhooks', {
      WEBHOOK_ALLOW_HTTP: 'true',
      WEBHOOK_ALLOW_PRIVATE: 'true',
    });
    await tools.sql(
      service.databaseUrl,
      `INSERT INTO webhook_endpoints (id, url, events, secret, base_url) VALUES ($1, $2, '{file.processed,file.failed}', $3, $4)`,
      [
        randomUUID(),
        `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`,
        newSigningSecret(),
        service.url,
      ],
    );
    const upload = uploader(service.url, tools.boundary);
    // Untimed first: fresh processes run their first requests unoptimized.
    const warmUp = await Promise.all(Array.from({ length: 100 }, (_, n) => upload(tools.uploadBody(n))));
    while (warmUp.some((id) => !received.has(id))) await sleep(50);

    const count = tools.quick ? 200 : 1000;
    await tools.scenario(`webhook latency: ${count} files at ${RATE_PER_S}/s`);
    const ids = await atSteadyRate(count, RATE_PER_S, (n) => upload(tools.uploadBody(100 + n)));
    const deadline = Date.now() + 120_000;
    while (ids.some((id) => !received.has(id)) && Date.now() < deadline) await sleep(50);
    const rows = await tools.sql<{ id: string; settled_ms: number }>(
      service.databaseUrl,
      "SELECT id, (extract(epoch FROM processed_at) * 1000)::float8 AS settled_ms FROM files WHERE id = ANY($1::uuid[]) AND status = 'processed'",
      [ids],
    );
    const latencies = rows
      .filter((row) => received.has(row.id))
      .map((row) => received.get(row.id)! - row.settled_ms)
      .sort((a, b) => a - b);
    const at = (q: number) => tools.round(quantile(latencies, q), 1);
    return {
      files: latencies.length,
      files_per_s: RATE_PER_S,
      latency_ms: { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: tools.round(latencies.at(-1)!, 1) },
    };
  } finally {
    receiver.closeAllConnections();
    receiver.close();
  }
}
