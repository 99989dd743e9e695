// Where unfinished tus uploads live: in the blob store's own place, shared by every API pod, so any pod continues
// any upload. On disk, @tus/file-store in `<STORAGE_DIR>/tus/` (the bytes, and `<id>.json` beside them); in a
// bucket, @tus/s3-store under `<S3_PREFIX>tus/` (a multipart upload, `<key>.info`, and `<key>.part` for a tail
// shorter than a part). A finished upload is adopted: its bytes become the File's blob (a rename on disk, a
// server-side copy in a bucket, never through the API) and its leftovers go.
import { rename, rm } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { CopyObjectCommand, DeleteObjectsCommand, HeadObjectCommand } from '@aws-sdk/client-s3';
import { FileStore } from '@tus/file-store';
import { S3Store, type MetadataValue } from '@tus/s3-store';
import type { DataStore, KvStore } from '@tus/utils';
import { LocalDiskStore, S3BlobStore, type BlobStore } from '../storage/index.js';

export interface ResumableStore {
  readonly datastore: DataStore;
  /** The datastore's id of the upload that becomes File `fileId`. */
  uploadIdOf(fileId: string): string;
  /** The File id of a datastore id (the reverse of uploadIdOf). */
  fileIdOf(uploadId: string): string;
  /** The finished upload's bytes, from the start. */
  read(fileId: string): Promise<Readable>;
  /** Makes the finished upload the blob of `fileId`; true once it is, false when there was nothing to adopt. */
  adopt(fileId: string): Promise<boolean>;
  /** Removes what is left of the upload in the datastore (after adoption, or on expiry). */
  discard(fileId: string): Promise<void>;
  /** Removes unfinished uploads created before `before`; answers how many. */
  removeExpired(before: Date): Promise<number>;
}

const NO_CACHE: KvStore<MetadataValue> = {
  get: () => Promise.resolve(undefined),
  set: () => Promise.resolve(),
  delete: () => Promise.resolve(),
};

/** A bucket's object larger than this cannot be copied by one CopyObject. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;
/** Parts of a bucket upload: tus chunks of any size are gathered into parts of this size. */
const PART_BYTES = 8 * 1024 * 1024;

export function resumableStoreFor(storage: BlobStore, expireAfterMs: number): ResumableStore {
  if (storage instanceof LocalDiskStore) return new DiskUploads(storage, expireAfterMs);
  if (storage instanceof S3BlobStore) return new BucketUploads(storage, expireAfterMs);
  throw new Error('Resumable uploads need the disk or the S3 blob store.');
}

class DiskUploads implements ResumableStore {
  readonly datastore: FileStore;
  private readonly directory: string;

  constructor(
    private readonly storage: LocalDiskStore,
    expireAfterMs: number,
  ) {
    this.directory = path.join(storage.root, 'tus');
    this.datastore = new FileStore({ directory: this.directory, expirationPeriodInMilliseconds: expireAfterMs });
  }

  uploadIdOf = (fileId: string): string => fileId;
  fileIdOf = (uploadId: string): string => uploadId;

  read(fileId: string): Promise<Readable> {
    return Promise.resolve(createReadStream(path.join(this.directory, fileId)));
  }

  async adopt(fileId: string): Promise<boolean> {
    try {
      // The same file system: a rename, whatever the size.
      await rename(path.join(this.directory, fileId), this.storage.pathOf(fileId));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      // Adopted by an earlier completion that failed after the rename.
      return (await this.storage.writtenAt(fileId)) !== null;
    }
  }

  async discard(fileId: string): Promise<void> {
    await rm(path.join(this.directory, fileId), { force: true });
    await rm(path.join(this.directory, `${fileId}.json`), { force: true });
  }

  removeExpired(): Promise<number> {
    // FileStore keeps the creation date in each upload's JSON and removes the unfinished ones past it.
    return this.datastore.deleteExpired();
  }
}

class BucketUploads implements ResumableStore {
  readonly datastore: S3Store;
  private readonly prefix: string;

  constructor(
    private readonly storage: S3BlobStore,
    expireAfterMs: number,
  ) {
    this.prefix = `${storage.settings.prefix}tus/`;
    this.datastore = new S3Store({
      partSize: PART_BYTES,
      expirationPeriodInMilliseconds: expireAfterMs,
      s3ClientConfig: { ...storage.clientConfig, bucket: storage.bucket },
      // Its default cache keeps an upload's metadata in this pod's memory: another pod's completion or expiry
      // would go unseen here (S3Store then takes the aborted upload for a finished one). One GET per request.
      cache: NO_CACHE,
    });
  }

  uploadIdOf = (fileId: string): string => `${this.prefix}${fileId}`;
  fileIdOf = (uploadId: string): string => uploadId.slice(this.prefix.length);

  async read(fileId: string): Promise<Readable> {
    return this.datastore.read(this.uploadIdOf(fileId));
  }

  async adopt(fileId: string): Promise<boolean> {
    const { client, bucket } = this.storage;
    const source = this.uploadIdOf(fileId);
    // The object, not the datastore's view of it (getUpload is the API's, and completes what it finds finished).
    let size: number;
    try {
      size = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: source }))).ContentLength ?? 0;
    } catch (err) {
      // Nothing left to copy: adopted by an earlier completion that failed after the copy.
      if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404)
        return (await this.storage.writtenAt(fileId)) !== null;
      throw err;
    }
    if (size > MAX_COPY_BYTES) {
      throw new Error(`A resumable upload larger than ${MAX_COPY_BYTES} bytes cannot be adopted by one copy.`);
    }
    await client.send(
      new CopyObjectCommand({
        Bucket: bucket,
        CopySource: `${bucket}/${source.split('/').map(encodeURIComponent).join('/')}`,
        Key: this.storage.keyOf(fileId),
      }),
    );
    return true;
  }

  async discard(fileId: string): Promise<void> {
    const key = this.uploadIdOf(fileId);
    await this.storage.client.send(
      new DeleteObjectsCommand({
        Bucket: this.storage.bucket,
        Delete: { Objects: [{ Key: key }, { Key: `${key}.info` }, { Key: `${key}.part` }], Quiet: true },
      }),
    );
  }

  /**
   * S3Store's own deleteExpired lists every multipart upload of the bucket, other services' included, and aborts
   * the old ones: this one looks only below our prefix.
   */
  removeExpired(before: Date): Promise<number> {
    // The metadata first: with it and no multipart upload, S3Store would take the upload for a finished one.
    return this.storage.abortUploadsBefore(this.prefix, before, (key) => this.discard(this.fileIdOf(key)));
  }
}
