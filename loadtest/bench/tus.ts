// The resumable-upload part of `make bench`: one big file sent by tus (api/tus.ts) in 8 MiB chunks, against the
// same bytes in one streamed `POST /upload/`, alternating on one API started for it, in the same run. The tus
// figure runs from the creating POST to the last PATCH's 204, so it includes the completion: the read-back of the
// whole upload for its SHA-256, the rename into the blob store and the File's insert.
import http from 'node:http';
import { Readable } from 'node:stream';
import { rssBytesOf } from '../../core/procfs.js';

export interface TusBenchTools {
  quick: boolean;
  scenario(message: string): Promise<void>;
  /** Starts the production API (disk store) with these settings over the bench's defaults. */
  startApi(name: string, env?: Record<string, string>): Promise<{ url: string; pid: () => number }>;
  /** One streamed `POST /upload/` of `bytes` through the API: MB/s and the API's RSS growth. */
  bigUpload(
    target: { url: string; pid: () => number },
    bytes: number,
  ): Promise<{ status: number; mb_per_s: number; rss_growth_mib: number }>;
  round: (value: number, digits?: number) => number;
}

interface Throughput {
  mb_per_s: number;
  rss_growth_mib: number;
}

export interface TusBench {
  bytes: number;
  chunk_bytes: number;
  /** Median over the rounds; `last_patch_s` is the last PATCH alone (its 8 MiB and the completion). */
  tus: Throughput & { last_patch_s: number };
  post: Throughput;
  mb_per_s_ratio: number;
}

const CHUNK_BYTES = 8 * 1024 * 1024;
/** What each chunk is made of, over and over: the same bytes as bigUpload's, so both send the same file. */
const BLOCK = Buffer.alloc(1024 * 1024, 0x5a);

/** The middle value; with an even count, the mean of the two middle ones. */
function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** `length` bytes of BLOCK repeated, a buffer at a time: never more than one block in memory. */
function* repeated(length: number): Generator<Buffer> {
  for (let left = length; left > 0; left -= BLOCK.length) yield left >= BLOCK.length ? BLOCK : BLOCK.subarray(0, left);
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function send(
  url: string,
  agent: http.Agent,
  method: string,
  headers: http.OutgoingHttpHeaders,
  body?: Iterable<Buffer>,
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    const request = http.request(url, { method, headers, agent });
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () =>
        resolve({
          status: response.statusCode ?? 0,
          headers: response.headers,
          body: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      response.on('error', reject);
    });
    request.on('error', reject);
    if (body) Readable.from(body).pipe(request);
    else request.end();
  });
}

/** One tus upload of `bytes` in CHUNK_BYTES chunks over one kept-alive connection: MB/s and the API's RSS growth. */
async function tusUpload(
  target: { url: string; pid: () => number },
  bytes: number,
  round: TusBenchTools['round'],
): Promise<TusBench['tus']> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const rssKiB = () => (rssBytesOf(target.pid()) ?? 0) / 1024;
  const rssBefore = rssKiB();
  let rssPeak = rssBefore;
  const sampler = setInterval(() => (rssPeak = Math.max(rssPeak, rssKiB())), 50);
  try {
    const started = process.hrtime.bigint();
    const created = await send(`${target.url}/uploads/tus/`, agent, 'POST', {
      'tus-resumable': '1.0.0',
      'upload-length': String(bytes),
      'upload-metadata': `filename ${Buffer.from('big.bin').toString('base64')}`,
      'content-length': '0',
    });
    const location = created.headers.location;
    if (created.status !== 201 || !location)
      throw new Error(`tus create answered ${created.status}: ${created.body.slice(0, 300)}`);
    const uploadUrl = new URL(location, target.url).href;
    let lastPatchStarted = started;
    for (let offset = 0; offset < bytes; offset += CHUNK_BYTES) {
      const length = Math.min(CHUNK_BYTES, bytes - offset);
      lastPatchStarted = process.hrtime.bigint();
      const patched = await send(
        uploadUrl,
        agent,
        'PATCH',
        {
          'tus-resumable': '1.0.0',
          'upload-offset': String(offset),
          'content-type': 'application/offset+octet-stream',
          'content-length': String(length),
        },
        repeated(length),
      );
      if (patched.status !== 204 || patched.headers['upload-offset'] !== String(offset + length))
        throw new Error(
          `tus PATCH at ${offset} answered ${patched.status} (Upload-Offset ${String(patched.headers['upload-offset'])}): ${patched.body.slice(0, 300)}`,
        );
    }
    const ended = process.hrtime.bigint();
    const seconds = Number(ended - started) / 1e9;
    return {
      mb_per_s: round(bytes / 1e6 / seconds, 1),
      rss_growth_mib: round((rssPeak - rssBefore) / 1024, 1),
      last_patch_s: round(Number(ended - lastPatchStarted) / 1e9),
    };
  } finally {
    clearInterval(sampler);
    agent.destroy();
  }
}

/** tools.bigUpload, refusing an upload the API did not take (its MB/s would mean nothing). */
async function postUpload(
  tools: TusBenchTools,
  target: { url: string; pid: () => number },
  bytes: number,
): Promise<Throughput> {
  const { status, mb_per_s, rss_growth_mib } = await tools.bigUpload(target, bytes);
  if (status !== 201) throw new Error(`POST /upload/ of ${bytes} bytes answered ${status}`);
  return { mb_per_s, rss_growth_mib };
}

/**
 * A tus upload of 1 GiB (256 MiB when quick) in 8 MiB chunks against a `POST /upload/` of the same bytes,
 * alternating (2 rounds of each, 1 when quick) on one API; medians. Nothing is removed between rounds.
 */
export async function benchTus(tools: TusBenchTools): Promise<TusBench> {
  const bytes = tools.quick ? 256 * 1024 * 1024 : 1024 ** 3;
  const rounds = tools.quick ? 1 : 2;
  // Its defaults hold the disk store and a MAX_UPLOAD_BYTES above 1 GiB.
  const api = await tools.startApi('tus');
  // Untimed first: a fresh process makes its tus server at the first request, and runs both paths unoptimized.
  await tusUpload(api, 4 * CHUNK_BYTES, tools.round);
  await postUpload(tools, api, 4 * CHUNK_BYTES);
  const tus: Array<TusBench['tus']> = [];
  const post: Throughput[] = [];
  const mib = bytes / 2 ** 20;
  for (let n = 0; n < rounds; n++) {
    await tools.scenario(`one ${mib} MiB tus upload in 8 MiB chunks (round ${n + 1} of ${rounds})`);
    tus.push(await tusUpload(api, bytes, tools.round));
    await tools.scenario(`one ${mib} MiB POST /upload/ of the same bytes (round ${n + 1} of ${rounds})`);
    post.push(await postUpload(tools, api, bytes));
  }
  const middle = <T>(all: T[], pick: (value: T) => number) => tools.round(median(all.map(pick)), 1);
  const result = {
    bytes,
    chunk_bytes: CHUNK_BYTES,
    tus: {
      mb_per_s: middle(tus, (t) => t.mb_per_s),
      rss_growth_mib: middle(tus, (t) => t.rss_growth_mib),
      last_patch_s: tools.round(median(tus.map((t) => t.last_patch_s))),
    },
    post: { mb_per_s: middle(post, (p) => p.mb_per_s), rss_growth_mib: middle(post, (p) => p.rss_growth_mib) },
  };
  return { ...result, mb_per_s_ratio: tools.round(result.tus.mb_per_s / result.post.mb_per_s) };
}
