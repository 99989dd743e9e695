// The ResumableStore contract, run against each blob store's own (BlobStore.resumable): the local directory and an
// S3 bucket on a real Ceph RADOS Gateway, as storage.test.ts runs the BlobStore contract. What the tus routes rely
// on from a store is here: its DataStore driven as @tus/server drives it, and the adoption, read-back, discard and
// expiry a completion and the reconciler use. A new store passes all of it.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { type DataStore, Upload } from '@tus/utils';
import { newId } from '../core/ids.js';
import { LocalDiskStore, type BlobStore } from '../core/storage/index.js';
import { CompletingDataStore, type CompletedUpload } from '../core/tus/completingStore.js';
import type { ResumableStore } from '../core/tus/stores.js';
import { rejection } from './support/eventually.js';
import { s3StoreOn, sharedGateway } from './support/rgw.js';

const MiB = 1024 * 1024;
const HOUR = 3_600_000;

interface Backend {
  blobs: BlobStore;
  destroy(): Promise<void>;
}

const BACKENDS: Record<string, (context: Mocha.Context) => Promise<Backend>> = {
  async 'local directory'() {
    const root = mkdtempSync(path.join(os.tmpdir(), 'fp-resumable-'));
    const blobs = new LocalDiskStore(root);
    await blobs.init();
    return { blobs, destroy: () => Promise.resolve(rmSync(root, { recursive: true, force: true })) };
  },
  async 'S3 bucket (Ceph RGW)'(context) {
    const blobs = await s3StoreOn(await sharedGateway(context));
    return { blobs, destroy: () => Promise.resolve(blobs.close()) };
  },
};

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** A request body that sends `bytes` and then fails, as when its client goes away mid-chunk. */
function cutAfter(bytes: Buffer): Readable {
  return Readable.from(
    (async function* () {
      for (let at = 0; at < bytes.length; at += MiB) yield bytes.subarray(at, at + MiB);
      throw new Error('the client went away');
    })(),
  );
}

for (const [name, make] of Object.entries(BACKENDS)) {
  describe(`ResumableStore contract: ${name}`, function () {
    this.timeout(60_000);
    let backend: Backend;
    let resumable: ResumableStore;
    let datastore: DataStore;
    before(async function () {
      backend = await make(this);
      resumable = backend.blobs.resumable(HOUR);
      datastore = resumable.datastore;
    });
    after(() => backend?.destroy());

    /** Creates an upload of `size` bytes (undefined: given later), as @tus/server does for a POST; its File id. */
    async function create(size: number | undefined): Promise<string> {
      const fileId = newId();
      const upload = new Upload({ id: resumable.uploadIdOf(fileId), size, offset: 0, metadata: { filename: 'a.bin' } });
      await datastore.create(upload);
      return fileId;
    }
    const write = (fileId: string, bytes: Buffer | Readable, offset: number) =>
      datastore.write(Buffer.isBuffer(bytes) ? Readable.from([bytes]) : bytes, resumable.uploadIdOf(fileId), offset);
    const uploadOf = (fileId: string) => datastore.getUpload(resumable.uploadIdOf(fileId));
    /** An upload of `bytes`, created and written whole. */
    async function finished(bytes: Buffer): Promise<string> {
      const fileId = await create(bytes.length);
      expect(await write(fileId, bytes, 0)).to.equal(bytes.length);
      return fileId;
    }
    const isGone = async (fileId: string) => {
      const status = ((await rejection(uploadOf(fileId))) as { status_code?: number }).status_code;
      expect(status, 'the status tus answers').to.be.oneOf([404, 410]);
    };

    it('creates an upload at offset 0 that keeps its length and metadata, and one whose length comes later', async () => {
      const known = await uploadOf(await create(1000));
      expect(known).to.include({ offset: 0, size: 1000, sizeIsDeferred: false });
      expect(known.metadata).to.deep.equal({ filename: 'a.bin' });
      expect(await uploadOf(await create(undefined))).to.include({ offset: 0, sizeIsDeferred: true });
    });

    it('takes the bytes in chunks of any size at the offsets it reports, and reads them back whole once finished', async () => {
      const bytes = randomBytes(12 * MiB + 5);
      const fileId = await create(bytes.length);
      let offset = 0;
      // Chunks below, across and at a part's size in a bucket (8 MiB).
      for (const size of [3 * MiB, 5 * MiB, 1, 4 * MiB + 4]) {
        offset = await write(fileId, bytes.subarray(offset, offset + size), offset);
        expect((await uploadOf(fileId)).offset).to.equal(offset);
      }
      expect(await uploadOf(fileId)).to.include({ offset: bytes.length, size: bytes.length });
      expect(sha256(await readAll(await resumable.read(fileId)))).to.equal(sha256(bytes));
    });

    it('keeps a prefix of a chunk cut short, reports its offset, and goes on from there', async () => {
      const bytes = randomBytes(12 * MiB);
      const fileId = await create(bytes.length);
      await rejection(write(fileId, cutAfter(bytes.subarray(0, 9 * MiB + 1234)), 0));
      const { offset } = await uploadOf(fileId);
      expect(offset).to.be.at.most(9 * MiB + 1234);
      expect(await write(fileId, bytes.subarray(offset), offset)).to.equal(bytes.length);
      expect(sha256(await readAll(await resumable.read(fileId)))).to.equal(sha256(bytes));
    });

    it('finishes an upload once the length given later is reached', async () => {
      const bytes = randomBytes(100_000);
      const fileId = await create(undefined);
      expect(await write(fileId, bytes.subarray(0, 30_000), 0)).to.equal(30_000);
      await datastore.declareUploadLength(resumable.uploadIdOf(fileId), bytes.length);
      expect(await write(fileId, bytes.subarray(30_000), 30_000)).to.equal(bytes.length);
      expect(await uploadOf(fileId)).to.include({ offset: bytes.length, size: bytes.length });
      expect((await readAll(await resumable.read(fileId))).equals(bytes)).to.equal(true);
    });

    it('adopts a finished upload as the blob of its File, and the upload stays whole until it is discarded', async () => {
      const bytes = randomBytes(200_000);
      const fileId = await finished(bytes);
      expect(await resumable.adopt(fileId)).to.equal(true);
      expect((await readAll(await backend.blobs.open(fileId))).equals(bytes)).to.equal(true);
      // A completion that fails after adopting runs again from the same bytes.
      expect(await uploadOf(fileId)).to.include({ offset: bytes.length, size: bytes.length });
      expect((await readAll(await resumable.read(fileId))).equals(bytes)).to.equal(true);
      expect(await resumable.adopt(fileId)).to.equal(true);

      await resumable.discard(fileId);
      await isGone(fileId);
      expect((await rejection(resumable.read(fileId))).code).to.equal('ENOENT');
      await resumable.discard(fileId);
      // Adopted by an earlier completion: the blob is the File's, and stays.
      expect(await resumable.adopt(fileId)).to.equal(true);
      expect((await readAll(await backend.blobs.open(fileId))).equals(bytes)).to.equal(true);
    });

    it('adopts nothing, and reads nothing, of an upload that is not there', async () => {
      const fileId = newId();
      expect(await resumable.adopt(fileId)).to.equal(false);
      expect((await rejection(resumable.read(fileId))).code).to.equal('ENOENT');
      await isGone(fileId);
    });

    it('discards an unfinished upload whole', async () => {
      const fileId = await create(10 * MiB);
      await write(fileId, randomBytes(6 * MiB), 0);
      await resumable.discard(fileId);
      await isGone(fileId);
    });

    it('removes the uploads created before the given time, finished or not, and only those', async () => {
      const unfinished = await create(1000);
      await write(unfinished, randomBytes(10), 0);
      const done = await finished(randomBytes(1000));
      const adopted = await finished(randomBytes(1000));
      await resumable.adopt(adopted);

      expect(await resumable.removeExpired(new Date(Date.now() - 60_000))).to.equal(0);
      for (const fileId of [unfinished, done, adopted]) expect(await uploadOf(fileId)).to.have.property('offset');

      expect(await resumable.removeExpired(new Date(Date.now() + 60_000))).to.be.at.least(3);
      for (const fileId of [unfinished, done, adopted]) await isGone(fileId);
      // The adopted bytes are the File's blob, not the upload's.
      expect(await backend.blobs.writtenAt(adopted)).to.not.equal(null);
      expect(await resumable.removeExpired(new Date(Date.now() + 60_000))).to.equal(0);
    });

    it("completes a finished upload whose completion failed at the next look, under tus's own DataStore calls", async () => {
      const bytes = randomBytes(300_000);
      const fileId = await finished(bytes);
      const uploadId = resumable.uploadIdOf(fileId);
      // What a completion does (api/tus.ts), with a File table of its own that refuses the first insert.
      const files = new Map<string, CompletedUpload & { sha256: string }>();
      let attempts = 0;
      const completing = new CompletingDataStore(datastore, {
        async complete(upload) {
          attempts++;
          const id = resumable.fileIdOf(upload.id);
          const hash = sha256(await readAll(await resumable.read(id)));
          expect(await resumable.adopt(id)).to.equal(true);
          if (attempts === 1) throw new Error('the database refused the File');
          const file = { size: upload.size!, name: upload.metadata!.filename!, sha256: hash };
          files.set(id, file);
          await resumable.discard(id);
          return file;
        },
        completed: (id) => Promise.resolve(files.get(resumable.fileIdOf(id)) ?? null),
      });
      const unfinished = await create(1000);
      expect(await completing.getUpload(resumable.uploadIdOf(unfinished))).to.include({ offset: 0 });
      expect(attempts, 'completions of an unfinished upload').to.equal(0);

      expect((await rejection(completing.getUpload(uploadId))).message).to.equal('the database refused the File');
      expect(await completing.getUpload(uploadId)).to.include({ offset: bytes.length, size: bytes.length });
      expect(attempts).to.equal(2);
      expect(files.get(fileId)).to.deep.equal({ size: bytes.length, name: 'a.bin', sha256: sha256(bytes) });
      expect((await readAll(await backend.blobs.open(fileId))).equals(bytes)).to.equal(true);
      // Its leftovers gone, the File answers for the upload.
      await isGone(fileId);
      expect(await completing.getUpload(uploadId)).to.include({ offset: bytes.length, size: bytes.length });
      expect(attempts).to.equal(2);
    });
  });
}
