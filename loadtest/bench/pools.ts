// The worker-pools part of `make bench`: head-of-line blocking. A burst of 640x480 PNGs, then texts at a steady
// rate; the texts' upload-to-processed p95 with one queue shared by every kind, against two pools (images in
// one queue, the rest in another) with the same total worker concurrency in one worker process. Both runs
// read their latencies from the database's own clock (uploaded_at, processed_at).
import { atSteadyRate, quantile, settled, uploader } from './uploads.js';

export interface PoolsBenchTools {
  quick: boolean;
  scenario(message: string): Promise<void>;
  /** The production API on a database of its own, and one worker beside it, with these settings each. */
  startApiAndWorker(
    name: string,
    env: Record<string, string>,
    workerEnv: Record<string, string>,
  ): Promise<{ url: string; databaseUrl: string }>;
  sql<T>(databaseUrl: string, text: string, values?: unknown[]): Promise<T[]>;
  imageBody(n: number): Buffer;
  textBody(n: number): Buffer;
  boundary: string;
  round: (value: number, digits?: number) => number;
}

interface TextLatency {
  p50_ms: number;
  p95_ms: number;
  max_ms: number;
  /** Seconds from the first image upload until every image was processed. */
  images_drained_s: number;
}

export interface PoolsBench {
  images: number;
  texts: number;
  texts_per_s: number;
  worker_concurrency: number;
  shared: TextLatency;
  pools: TextLatency & { routes: string; worker_queues: string };
  /** pools p95 / shared p95: the figure (target at most 0.2). */
  p95_ratio: number;
}

const TEXT_RATE_PER_S = 50;
const CONCURRENCY = 8;
const ROUTES = 'image,pdf,video,audio=heavy;*=light';
const WORKER_QUEUES = 'heavy=6,light=2';

export async function benchPools(tools: PoolsBenchTools): Promise<PoolsBench> {
  const images = tools.quick ? 500 : 2000;
  const texts = tools.quick ? 250 : 1000;
  const run = async (name: string, env: Record<string, string>, workerEnv: Record<string, string>) => {
    const service = await tools.startApiAndWorker(name, env, { WORKER_CONCURRENCY: String(CONCURRENCY), ...workerEnv });
    const upload = uploader(service.url, tools.boundary);
    // Untimed first: fresh processes run their first requests unoptimized.
    await Promise.all(Array.from({ length: 50 }, (_, n) => upload(tools.textBody(n))));
    await settled(tools, service.databaseUrl);

    await tools.scenario(`head of line (${name}): ${images} PNGs at once, then ${texts} texts at ${TEXT_RATE_PER_S}/s`);
    const burstStarted = Date.now();
    const pending = Array.from({ length: images }, (_, n) => tools.imageBody(n));
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        for (let body = pending.shift(); body; body = pending.shift()) await upload(body);
      }),
    );
    const ids = await atSteadyRate(texts, TEXT_RATE_PER_S, (n) => upload(tools.textBody(1_000 + n)));
    await settled(tools, service.databaseUrl);
    const latencies = (
      await tools.sql<{ ms: number }>(
        service.databaseUrl,
        "SELECT (extract(epoch FROM processed_at - uploaded_at) * 1000)::float8 AS ms FROM files WHERE id = ANY($1::uuid[]) AND status = 'processed'",
        [ids],
      )
    )
      .map((row) => row.ms)
      .sort((a, b) => a - b);
    if (latencies.length !== texts) throw new Error(`${name}: ${latencies.length} of ${texts} texts were processed`);
    const [drained] = await tools.sql<{ at: number }>(
      service.databaseUrl,
      "SELECT (extract(epoch FROM max(processed_at)) * 1000)::float8 AS at FROM files WHERE kind = 'image'",
    );
    const at = (q: number) => tools.round(quantile(latencies, q), 1);
    return {
      p50_ms: at(0.5),
      p95_ms: at(0.95),
      max_ms: tools.round(latencies.at(-1)!, 1),
      images_drained_s: tools.round((drained!.at - burstStarted) / 1000, 1),
    };
  };
  const shared = await run('shared-queue', {}, {});
  const pools = await run('two-pools', { QUEUE_ROUTES: ROUTES }, { WORKER_QUEUES });
  return {
    images,
    texts,
    texts_per_s: TEXT_RATE_PER_S,
    worker_concurrency: CONCURRENCY,
    shared,
    pools: { ...pools, routes: ROUTES, worker_queues: WORKER_QUEUES },
    p95_ratio: tools.round(pools.p95_ms / shared.p95_ms, 3),
  };
}
