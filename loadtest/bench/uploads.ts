// What the bench phases that drive a running service share: one upload at a time over kept-alive sockets,
// uploads sent at a steady rate, waiting for the files to settle, and quantiles of measured latencies.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

/** POSTs one multipart body to `<url>/upload/` and resolves with the new File's id (any answer but 201 rejects). */
export function uploader(url: string, boundary: string): (body: Buffer) => Promise<string> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  return (body) =>
    new Promise<string>((resolve, reject) => {
      const request = http.request(`${url}/upload/`, {
        method: 'POST',
        agent,
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length },
      });
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          if (response.statusCode !== 201) return reject(new Error(`upload answered ${response.statusCode}`));
          resolve((JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string }).id);
        });
      });
      request.on('error', reject);
      request.end(body);
    });
}

/** Starts `send(n)` for n = 0..count-1 at `ratePerS`, without waiting for answers; resolves with every answer. */
export async function atSteadyRate<T>(count: number, ratePerS: number, send: (n: number) => Promise<T>): Promise<T[]> {
  const started = Date.now();
  const sent: Array<Promise<T>> = [];
  for (let n = 0; n < count; n++) {
    const due = started + (n * 1000) / ratePerS;
    if (due > Date.now()) await sleep(due - Date.now());
    sent.push(send(n));
  }
  return Promise.all(sent);
}

/** The q-quantile of values sorted ascending (nearest rank). */
export const quantile = (sorted: readonly number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** Waits until no file of the service on `databaseUrl` is queued or processing (10 minutes at most). */
export async function settled(
  tools: { sql<T>(databaseUrl: string, text: string, values?: unknown[]): Promise<T[]> },
  databaseUrl: string,
): Promise<void> {
  const deadline = Date.now() + 600_000;
  for (;;) {
    const [row] = await tools.sql<{ count: string }>(
      databaseUrl,
      "SELECT count(*) FROM files WHERE status IN ('queued', 'processing')",
    );
    if (Number(row?.count) === 0) return;
    if (Date.now() > deadline) throw new Error(`${row?.count} files still unsettled after 10 minutes`);
    await sleep(200);
  }
}
