// The object-storage part of `make bench`: the API writing into a bucket on a real gateway (Ceph RGW, started
// for the run) against the AWS SDK writing the same bytes straight to the same gateway, in the same run; and
// the API's CPU per direct upload (two small requests, the bytes going around it) beside a proxied 1 MiB upload.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import http from 'node:http';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Upload } from '@aws-sdk/lib-storage';
import { cpuMsOf } from '../../core/procfs.js';
import { startCluster, type Gateway } from '../../test/support/rgw.js';

export interface S3BenchTools {
  seconds: number;
  quick: boolean;
  scenario(message: string): Promise<void>;
  /** Starts the production API with these settings over the bench's defaults. */
  startApi(name: string, env: Record<string, string>): Promise<{ url: string; pid: () => number }>;
  /** autocannon POSTs of `body` (a multipart form) for `seconds`; requests/s and the server's CPU per request. */
  uploads(
    url: string,
    body: Buffer,
    connections: number,
    pid: number,
  ): Promise<{ rps: number; server_cpu_ms?: number; errors: number }>;
  /** One streamed upload of `bytes` through the API: MB/s and the API's RSS growth. */
  bigUpload(
    target: { url: string; pid: () => number },
    bytes: number,
  ): Promise<{ mb_per_s: number; rss_growth_mib: number }>;
  round: (value: number, digits?: number) => number;
}

/** What the SDK's own client does at the same concurrency: 1 KiB PutObjects for `seconds`. */
async function sdkPuts(client: S3Client, bucket: string, body: Buffer, concurrency: number, seconds: number) {
  const until = Date.now() + seconds * 1000;
  let done = 0;
  let errors = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, lane) => {
      for (let n = 0; Date.now() < until; n++) {
        await client
          .send(
            new PutObjectCommand({ Bucket: bucket, Key: `sdk/${lane}/${n}`, Body: body, ContentLength: body.length }),
          )
          .then(
            () => done++,
            () => errors++,
          );
      }
    }),
  );
  return { rps: done / seconds, errors };
}

/** The SDK streaming `bytes` into one object with the store's part size and parallelism: MB/s. */
async function sdkBigUpload(client: S3Client, bucket: string, bytes: number) {
  const chunk = Buffer.alloc(1024 * 1024, 0x5a);
  const body = Readable.from(
    (function* () {
      for (let sent = 0; sent < bytes; sent += chunk.length) yield chunk;
    })(),
  );
  const started = process.hrtime.bigint();
  await new Upload({
    client,
    params: { Bucket: bucket, Key: 'sdk/big.bin', Body: body },
    partSize: 8 * 1024 * 1024,
    queueSize: 4,
  }).done();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { mb_per_s: bytes / 1e6 / seconds };
}

/** This process's CPU per call, `count` calls in a row after as many to warm up: what each S3 call costs a client. */
async function callCosts(client: S3Client, bucket: string, count: number) {
  await client.send(new PutObjectCommand({ Bucket: bucket, Key: 'calls/k', Body: Buffer.alloc(8192, 1) }));
  const agent = new http.Agent({ keepAlive: true });
  const presigned = await getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: 'calls/k' }), {
    expiresIn: 3600,
  });
  const calls: Record<string, () => Promise<unknown>> = {
    head: () => client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'calls/k' })),
    ranged_get: async () => {
      const answer = await client.send(new GetObjectCommand({ Bucket: bucket, Key: 'calls/k', Range: 'bytes=0-4099' }));
      return answer.Body!.transformToByteArray();
    },
    presign: () => getSignedUrl(client, new GetObjectCommand({ Bucket: bucket, Key: 'calls/k' }), { expiresIn: 300 }),
    ranged_get_node_http: () =>
      new Promise((resolve, reject) => {
        http
          .get(presigned, { agent, headers: { Range: 'bytes=0-4099' } }, (answer) => answer.resume().on('end', resolve))
          .on('error', reject);
      }),
  };
  const cpuMs = () => {
    const { user, system } = process.cpuUsage();
    return (user + system) / 1000;
  };
  const costs: Record<string, number> = {};
  for (const [name, call] of Object.entries(calls)) {
    for (let n = 0; n < count; n++) await call();
    const before = cpuMs();
    for (let n = 0; n < count; n++) await call();
    costs[name] = Math.round(((cpuMs() - before) / count) * 1000) / 1000;
  }
  agent.destroy();
  return costs;
}

/** `count` direct uploads of 1 KiB, 8 at a time: announce, PUT to the bucket, complete. API CPU per upload. */
async function directUploads(api: { url: string; pid: () => number }, count: number) {
  const one = async (n: number) => {
    const bytes = Buffer.from(`direct upload number ${n}\n`.padEnd(1024, '.'));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const offer = (await (
      await fetch(`${api.url}/uploads/`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: `d${n}.txt`, size: bytes.length, sha256 }),
      })
    ).json()) as { url: string; headers: Record<string, string>; complete_url: string };
    const put = await fetch(offer.url, { method: 'PUT', headers: offer.headers, body: bytes });
    const completed = await fetch(offer.complete_url, { method: 'POST' });
    await completed.arrayBuffer();
    return put.ok && completed.status === 201;
  };
  const before = cpuMsOf(api.pid()) ?? 0;
  let next = 0;
  let failed = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < count) if (!(await one(next++))) failed++;
    }),
  );
  return { uploads: count, failed, api_cpu_ms: ((cpuMsOf(api.pid()) ?? 0) - before) / count };
}

export async function benchObjectStorage(tools: S3BenchTools, smallBody: Buffer, mediumBody: Buffer) {
  const { round } = tools;
  const gib = tools.quick ? 256 * 1024 * 1024 : 1024 ** 3;
  // Two objects of `gib` and the small ones, in RAM (memstore), with room for what garbage collection keeps.
  const gateway: Gateway = await startCluster(3 * gib + 2 * 1024 ** 3);
  const client = gateway.client();
  try {
    const bucket = await gateway.createBucket('bench');
    const api = await tools.startApi('s3', gateway.env(bucket, 'bench/'));

    await tools.scenario('1 KiB uploads into the bucket, 16 connections: the API against the SDK');
    const apiSmall = await tools.uploads(`${api.url}/upload/`, smallBody, 16, api.pid());
    const sdkSmall = await sdkPuts(client, bucket, smallBody.subarray(0, 1024), 16, tools.seconds);

    // Before the big upload, as on the disk store: its RSS growth is then measured on an API warmed alike.
    await tools.scenario('1 MiB uploads through the API into the bucket, 8 connections');
    const proxied = await tools.uploads(`${api.url}/upload/`, mediumBody, 8, api.pid());

    await tools.scenario(`one ${gib / 2 ** 20} MiB upload into the bucket: the API against the SDK`);
    const apiBig = await tools.bigUpload(api, gib);
    const sdkBig = await sdkBigUpload(client, bucket, gib);

    await tools.scenario('direct uploads of 1 KiB, 8 at a time');
    const direct = await directUploads(api, tools.quick ? 100 : 500);

    await tools.scenario('the CPU of one S3 call, by the SDK and by node:http on a presigned URL');
    const callCpu = await callCosts(client, bucket, tools.quick ? 200 : 500);

    return {
      upload_1kib: {
        api_rps: apiSmall.rps,
        sdk_rps: round(sdkSmall.rps, 1),
        rps_ratio: round(apiSmall.rps / sdkSmall.rps),
        api_errors: apiSmall.errors,
        sdk_errors: sdkSmall.errors,
        api_cpu_ms: apiSmall.server_cpu_ms,
      },
      upload_1gib: {
        api_mb_per_s: apiBig.mb_per_s,
        sdk_mb_per_s: round(sdkBig.mb_per_s, 1),
        mb_per_s_ratio: round(apiBig.mb_per_s / sdkBig.mb_per_s),
        api_rss_growth_mib: apiBig.rss_growth_mib,
      },
      call_cpu_ms: callCpu,
      direct_upload: {
        ...direct,
        api_cpu_ms: round(direct.api_cpu_ms, 3),
        proxied_1mib_api_cpu_ms: proxied.server_cpu_ms,
        cpu_ratio: round(direct.api_cpu_ms / (proxied.server_cpu_ms ?? Infinity)),
      },
    };
  } finally {
    client.destroy();
    await gateway.destroy();
  }
}

export type ObjectStorageBench = Awaited<ReturnType<typeof benchObjectStorage>>;
