// The BlobStore contract, run against both implementations: the local directory and an S3 bucket on a real
// Ceph RADOS Gateway. Whatever the service relies on from a store is here; a store passes all of it.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand } from '@aws-sdk/client-s3';
import { newId } from '../core/ids.js';
import {
  BlobTooLargeError,
  HEAD_BYTES,
  LocalDiskStore,
  type BlobSource,
  type BlobStore,
  S3BlobStore,
} from '../core/storage/index.js';
import { rejection } from './support/eventually.js';
import { s3StoreOn, sharedGateway, type Gateway } from './support/rgw.js';
import { startService, uploadFile } from './support/service.js';

interface Backend {
  store: BlobStore;
  /** An upload that was started and never finished, as the store leaves one. */
  leaveUnfinished(id: string): Promise<void>;
  /** How many unfinished uploads the store holds. */
  unfinished(): Promise<number>;
  /** A store whose listings come in pages of two, to prove the pages are followed. */
  paged(): Promise<BlobStore>;
  destroy(): Promise<void>;
}

const BACKENDS: Record<string, (context: Mocha.Context) => Promise<Backend>> = {
  async 'local directory'() {
    const root = mkdtempSync(path.join(os.tmpdir(), 'fp-store-'));
    const store = new LocalDiskStore(root);
    await store.init();
    return {
      store,
      leaveUnfinished: (id) => Promise.resolve(writeFileSync(path.join(store.tmpDir, `${id}.part`), 'partial')),
      unfinished: () => Promise.resolve(readdirSync(store.tmpDir).length),
      paged: () => Promise.resolve(store),
      destroy: () => Promise.resolve(rmSync(root, { recursive: true, force: true })),
    };
  },
  async 'S3 bucket (Ceph RGW)'(context) {
    const gateway = await sharedGateway(context);
    const store = await s3StoreOn(gateway);
    const prefix = `${store.settings.prefix}blobs/`;
    return {
      store,
      async leaveUnfinished(id) {
        await store.client.send(new CreateMultipartUploadCommand({ Bucket: store.bucket, Key: store.keyOf(id) }));
      },
      async unfinished() {
        const page = await store.client.send(new ListMultipartUploadsCommand({ Bucket: store.bucket, Prefix: prefix }));
        return page.Uploads?.length ?? 0;
      },
      paged: () => s3StoreOn(gateway, { listPageSize: 2 }),
      destroy: () => Promise.resolve(store.close()),
    };
  },
};

const bytesOf = (size: number) => randomBytes(size);
const s3Env = (gateway: Gateway, store: S3BlobStore, extra: Record<string, string>) => ({
  ...gateway.env(store.bucket, store.settings.prefix),
  ...extra,
});
const isMissing = async (promise: Promise<unknown>) => expect((await rejection(promise)).code).to.equal('ENOENT');
const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function read(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** A source that sends `bytes`, then fails (or just ends its stream early) instead of finishing. */
function brokenSource(bytes: Buffer, how: 'error' | 'close'): Readable {
  const source = new PassThrough();
  source.write(bytes, () =>
    setImmediate(() => (how === 'error' ? source.destroy(new Error('client went away')) : source.destroy())),
  );
  return source;
}

/** A source of `total` bytes made lazily, `chunk` at a time; counts how many were pulled. */
function endless(total: number, chunk = 64 * 1024): { source: Readable; pulled: () => number } {
  let pulled = 0;
  const block = Buffer.alloc(chunk, 'x');
  const source = new Readable({
    read() {
      if (pulled >= total) return this.push(null);
      pulled += block.length;
      this.push(block);
    },
  });
  return { source, pulled: () => pulled };
}

for (const [name, make] of Object.entries(BACKENDS)) {
  describe(`BlobStore contract: ${name}`, function () {
    this.timeout(60_000);
    let backend: Backend;
    let store: BlobStore;
    before(async function () {
      backend = await make(this);
      store = backend.store;
    });
    after(() => backend?.destroy());

    it('stores the bytes and reads them back, with their size, sha256 and head', async () => {
      const id = newId();
      const bytes = bytesOf(10_000);
      const blob = await store.put(id, Readable.from([bytes.subarray(0, 3000), bytes.subarray(3000)]), {
        maxBytes: 10_000,
      });
      expect(blob).to.deep.equal({ size: 10_000, sha256: sha256(bytes), head: bytes.subarray(0, HEAD_BYTES) });
      expect((await read(await store.open(id))).equals(bytes)).to.equal(true);
    });

    it('streams a file of several parts in and out whole (20 MiB)', async () => {
      const id = newId();
      const bytes = bytesOf(20 * 1024 * 1024 + 17);
      const chunks = Array.from({ length: 21 }, (_, n) => bytes.subarray(n * 1024 * 1024, (n + 1) * 1024 * 1024));
      const blob = await store.put(id, Readable.from(chunks), { maxBytes: bytes.length });
      expect(blob.size).to.equal(bytes.length);
      expect(blob.sha256).to.equal(sha256(bytes));
      expect(sha256(await read(await store.open(id)))).to.equal(sha256(bytes));
    });

    it('stores an empty blob', async () => {
      const id = newId();
      expect((await store.put(id, Readable.from([]), { maxBytes: 10 })).size).to.equal(0);
      expect((await read(await store.open(id))).length).to.equal(0);
    });

    it('reads inclusive byte ranges: the first byte, the middle, the last byte', async () => {
      const id = newId();
      const bytes = bytesOf(1000);
      await store.put(id, Readable.from([bytes]), { maxBytes: 1000 });
      for (const [start, end] of [
        [0, 0],
        [100, 899],
        [999, 999],
        [0, 999],
      ] as const) {
        const got = await read(await store.open(id, { range: { start, end } }));
        expect(got.equals(bytes.subarray(start, end + 1)), `${start}-${end}`).to.equal(true);
      }
    });

    it('keeps a variant beside the original and removes both together', async () => {
      const id = newId();
      await store.put(id, Readable.from([Buffer.from('original')]), { maxBytes: 100 });
      await store.put(id, Readable.from([Buffer.from('preview')]), { maxBytes: 100, variant: 'thumbnail' });
      expect((await read(await store.open(id, { variant: 'thumbnail' }))).toString()).to.equal('preview');
      expect((await read(await store.open(id))).toString()).to.equal('original');
      await store.remove(id);
      await isMissing(store.open(id));
      await isMissing(store.open(id, { variant: 'thumbnail' }));
    });

    it('removes a variant alone, and the original stays', async () => {
      const id = newId();
      await store.put(id, Readable.from([Buffer.from('original')]), { maxBytes: 100 });
      await store.put(id, Readable.from([Buffer.from('preview')]), { maxBytes: 100, variant: 'thumbnail' });
      await store.remove(id, { variant: 'thumbnail' });
      await isMissing(store.open(id, { variant: 'thumbnail' }));
      expect((await read(await store.open(id))).toString()).to.equal('original');
    });

    it('rejects with ENOENT for a blob that does not exist; removing one is not an error', async () => {
      const id = newId();
      await isMissing(store.open(id));
      await isMissing(store.open(id, { range: { start: 0, end: 9 } }));
      await store.remove(id);
      expect(await store.writtenAt(id)).to.equal(null);
    });

    it('replaces a blob written again under the same id', async () => {
      const id = newId();
      await store.put(id, Readable.from([Buffer.from('first')]), { maxBytes: 100 });
      await store.put(id, Readable.from([Buffer.from('second')]), { maxBytes: 100 });
      expect((await read(await store.open(id))).toString()).to.equal('second');
    });

    it('refuses a blob over the limit, stops reading there and keeps nothing', async () => {
      const id = newId();
      const limit = 1024 * 1024;
      const { source, pulled } = endless(64 * 1024 * 1024);
      expect(await rejection(store.put(id, source, { maxBytes: limit }))).to.be.instanceOf(BlobTooLargeError);
      // Stream buffers between the source and the store hold a little more than the limit, not the source.
      expect(pulled()).to.be.below(limit + 1024 * 1024);
      await isMissing(store.open(id));
      expect(await backend.unfinished()).to.equal(0);
    });

    it('keeps a blob of exactly the limit and refuses one byte more', async () => {
      const id = newId();
      const bytes = bytesOf(4096);
      expect((await store.put(id, Readable.from([bytes]), { maxBytes: 4096 })).size).to.equal(4096);
      const over = newId();
      const refused = await rejection(store.put(over, Readable.from([bytes, Buffer.from('!')]), { maxBytes: 4096 }));
      expect(refused).to.be.instanceOf(BlobTooLargeError);
      await isMissing(store.open(over));
    });

    it('refuses a blob over the limit after several parts and keeps nothing', async () => {
      const id = newId();
      const limit = 17 * 1024 * 1024;
      const { source } = endless(40 * 1024 * 1024);
      expect(await rejection(store.put(id, source, { maxBytes: limit }))).to.be.instanceOf(BlobTooLargeError);
      await isMissing(store.open(id));
      expect(await backend.unfinished()).to.equal(0);
    });

    for (const how of ['error', 'close'] as const) {
      it(`keeps nothing when the source ${how === 'error' ? 'fails' : 'closes early'} (small and multipart)`, async () => {
        for (const size of [1000, 9 * 1024 * 1024]) {
          const id = newId();
          await rejection(store.put(id, brokenSource(bytesOf(size), how), { maxBytes: 100 * 1024 * 1024 }));
          await isMissing(store.open(id));
          expect(await backend.unfinished(), `${size} bytes`).to.equal(0);
        }
      });
    }

    it('removes unfinished uploads last written before the given time, and only those', async () => {
      const id = newId();
      await backend.leaveUnfinished(id);
      expect(await store.removeTemporaryBefore(new Date(Date.now() - 60_000))).to.equal(0);
      expect(await backend.unfinished()).to.equal(1);
      expect(await store.removeTemporaryBefore(new Date(Date.now() + 60_000))).to.equal(1);
      expect(await backend.unfinished()).to.equal(0);
    });

    it('lists every id once, a variant-only one too, and walks the same ids page by page from a cursor', async () => {
      const paged = await backend.paged();
      const ids = Array.from({ length: 5 }, () => newId());
      for (const id of ids.slice(0, 4)) await paged.put(id, Readable.from([Buffer.from(id)]), { maxBytes: 100 });
      await paged.put(ids[0]!, Readable.from([Buffer.from('t')]), { maxBytes: 100, variant: 'thumbnail' });
      await paged.put(ids[4]!, Readable.from([Buffer.from('t')]), { maxBytes: 100, variant: 'thumbnail' });

      const whole = await paged.listIds(null, 10_000);
      expect(whole.cursor).to.equal(null);
      expect(whole.ids).to.include.members(ids);
      expect(whole.ids.filter((id) => id === ids[0])).to.have.length(1);

      const walked = new Set<string>();
      let cursor: string | null = null;
      do {
        const page = await paged.listIds(cursor, 3);
        expect(page.ids.length).to.be.at.most(3);
        page.ids.forEach((id) => walked.add(id));
        cursor = page.cursor;
      } while (cursor !== null);
      expect([...walked].sort()).to.deep.equal([...whole.ids].sort());
    });

    it('tells when any blob of an id was last written', async () => {
      const id = newId();
      const before = Date.now() - 2_000;
      await store.put(id, Readable.from([Buffer.from('x')]), { maxBytes: 10 });
      const written = await store.writtenAt(id);
      expect(written?.getTime()).to.be.within(before, Date.now() + 2_000);
    });

    it('tells a parser where to read ranges itself, with no copy: a path on disk, a presigned GET in a bucket', async () => {
      const id = newId();
      const bytes = bytesOf(5000);
      await store.put(id, Readable.from([bytes]), { maxBytes: 5000 });
      const source = await store.source(id, 60_000);
      const read = async (from: BlobSource, start: number, end: number): Promise<Buffer | number> => {
        if ('path' in from) {
          if (!existsSync(from.path)) return 404;
          return readFileSync(from.path).subarray(start, end + 1);
        }
        const answer = await fetch(from.url, { headers: { Range: `bytes=${start}-${end}` } });
        return answer.ok ? Buffer.from(await answer.arrayBuffer()) : answer.status;
      };
      expect(await read(source, 1000, 1999)).to.deep.equal(bytes.subarray(1000, 2000));
      expect(await read(source, 4990, 4999)).to.deep.equal(bytes.subarray(4990));
      if ('url' in source) expect(Number(new URL(source.url).searchParams.get('X-Amz-Expires'))).to.equal(60);
      // Nothing is checked up front: whoever reads a missing blob finds it missing.
      expect(await read(await store.source(newId(), 60_000), 0, 9)).to.equal(404);
    });

    it('answers ping when it can be used', async () => {
      await store.ping();
    });
  });
}

describe('S3 bucket specifics', function () {
  this.timeout(60_000);

  it('ping fails for a bucket that does not exist', async function () {
    const gateway = await sharedGateway(this);
    const store: S3BlobStore = await s3StoreOn(gateway);
    const missing = new (store.constructor as typeof S3BlobStore)(
      { ...store.settings, bucket: 'fp-no-such-bucket' },
      { client: { credentials: { accessKeyId: gateway.accessKeyId, secretAccessKey: gateway.secretAccessKey } } },
    );
    try {
      await rejection(missing.ping());
    } finally {
      missing.close();
      store.close();
    }
  });

  it('sends a part the store failed again, from the same chunks, and the object is whole', async function () {
    const gateway = await sharedGateway(this);
    const store = await s3StoreOn(gateway);
    // A proxy in front of the gateway answers 503 to the first try of part 2, after taking its body.
    const upstream = new URL(gateway.endpoint);
    const parts: string[] = [];
    let failed = false;
    const proxy = http.createServer((request, response) => {
      const part = new URL(request.url!, 'http://proxy').searchParams.get('partNumber');
      if (part) parts.push(part);
      if (part === '2' && !failed) {
        failed = true;
        request.resume();
        request.on('end', () => response.writeHead(503).end('<Error><Code>SlowDown</Code></Error>'));
        return;
      }
      const forwarded = http.request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: request.method,
          path: request.url,
          headers: request.headers,
        },
        (answer) => {
          response.writeHead(answer.statusCode!, answer.headers);
          answer.pipe(response);
        },
      );
      request.pipe(forwarded);
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxied = new S3BlobStore(
      { ...store.settings, endpoint: `http://127.0.0.1:${(proxy.address() as AddressInfo).port}` },
      { client: { credentials: { accessKeyId: gateway.accessKeyId, secretAccessKey: gateway.secretAccessKey } } },
    );
    try {
      const bytes = bytesOf(12 * 1024 * 1024);
      const id = newId();
      const stored = await proxied.put(
        id,
        Readable.from(Array.from({ length: 192 }, (_, n) => bytes.subarray(n * 65536, (n + 1) * 65536))),
        { maxBytes: bytes.length },
      );
      expect(stored.sha256).to.equal(sha256(bytes));
      expect(parts.filter((part) => part === '2')).to.have.length(2);
      expect(sha256(await read(await store.open(id)))).to.equal(sha256(bytes));
    } finally {
      proxied.close();
      store.close();
      proxy.close();
    }
  });

  it('answers a download with a redirect to a presigned GET that keeps the headers (DOWNLOAD_REDIRECT)', async function () {
    const gateway = await sharedGateway(this);
    const store = await s3StoreOn(gateway);
    const service = await startService({
      storage: store,
      worker: false,
      env: s3Env(gateway, store, { DOWNLOAD_REDIRECT: 'true' }),
    });
    try {
      const bytes = bytesOf(3000);
      const file = await uploadFile(service.url, { name: 'résumé.pdf', content: bytes, type: 'application/pdf' });
      const answer = await fetch(`${service.url}/files/${file.id}/content`, { redirect: 'manual' });
      expect(answer.status).to.equal(302);
      expect(answer.headers.get('cache-control')).to.equal('no-store');
      const location = new URL(answer.headers.get('location')!);
      expect(location.origin).to.equal(gateway.endpoint);
      expect(location.searchParams.get('X-Amz-Expires')).to.equal('300');
      const direct = await fetch(location);
      expect(direct.status).to.equal(200);
      expect(Buffer.from(await direct.arrayBuffer()).equals(bytes)).to.equal(true);
      expect(direct.headers.get('content-type')).to.equal(file.content_type);
      expect(direct.headers.get('content-disposition')).to.equal(
        (await fetch(`${service.url}/files/${file.id}/content`, { method: 'HEAD', redirect: 'manual' })).headers.get(
          'content-disposition',
        ),
      );
      const ranged = await fetch(location, { headers: { Range: 'bytes=10-19' } });
      expect(Buffer.from(await ranged.arrayBuffer()).equals(bytes.subarray(10, 20))).to.equal(true);
      // A conditional request the API can answer itself is still answered by the API.
      const notModified = await fetch(`${service.url}/files/${file.id}/content`, {
        headers: { 'If-None-Match': `"${file.sha256}"` },
        redirect: 'manual',
      });
      expect(notModified.status).to.equal(304);
    } finally {
      await service.close();
      store.close();
    }
  });
});
