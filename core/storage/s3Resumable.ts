// Resumable (tus) uploads of the bucket: @tus/s3-store under `<S3_PREFIX>tus/`, each upload a multipart upload at
// `<key>`, its metadata `<key>.info`, and `<key>.part` for a tail shorter than a part. A finished upload is adopted
// by a server-side CopyObject into the blob's key (never the bytes through the API); the upload stays until it is
// discarded, so a completion that fails after adopting runs again from the same bytes.
import type { Readable } from 'node:stream';
import { CopyObjectCommand, DeleteObjectsCommand, HeadObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { S3Store, type MetadataValue } from '@tus/s3-store';
import type { KvStore } from '@tus/utils';
import type { ResumableStore } from '../tus/stores.js';
import type { S3BlobStore } from './s3.js';
import { missing, unavailable } from './s3Errors.js';

const NO_CACHE: KvStore<MetadataValue> = {
  get: () => Promise.resolve(undefined),
  set: () => Promise.resolve(),
  delete: () => Promise.resolve(),
};

/** A bucket's object larger than this cannot be copied by one CopyObject. */
const MAX_COPY_BYTES = 5 * 1024 ** 3;
/** Parts of a bucket upload: tus chunks of any size are gathered into parts of this size. */
const PART_BYTES = 8 * 1024 * 1024;

const INFO = '.info';

export class ResumableBucketUploads implements ResumableStore {
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
    try {
      return await this.datastore.read(this.uploadIdOf(fileId));
    } catch (err) {
      throw missing(err) ?? unavailable(err, 'reading');
    }
  }

  async adopt(fileId: string): Promise<boolean> {
    const { client, bucket } = this.storage;
    const source = this.uploadIdOf(fileId);
    // The object, not the datastore's view of it.
    let size: number;
    try {
      size = (await client.send(new HeadObjectCommand({ Bucket: bucket, Key: source }))).ContentLength ?? 0;
    } catch (err) {
      // Nothing left to copy: adopted by an earlier completion, and discarded since.
      if (missing(err)) return (await this.storage.writtenAt(fileId)) !== null;
      throw unavailable(err, 'reading');
    }
    if (size > MAX_COPY_BYTES) {
      throw new Error(`A resumable upload larger than ${MAX_COPY_BYTES} bytes cannot be adopted by one copy.`);
    }
    await client
      .send(
        new CopyObjectCommand({
          Bucket: bucket,
          CopySource: `${bucket}/${source.split('/').map(encodeURIComponent).join('/')}`,
          Key: this.storage.keyOf(fileId),
        }),
      )
      .catch((err: unknown) => {
        throw unavailable(err, 'copying');
      });
    return true;
  }

  async discard(fileId: string): Promise<void> {
    const key = this.uploadIdOf(fileId);
    await this.storage.client
      .send(
        new DeleteObjectsCommand({
          Bucket: this.storage.bucket,
          Delete: { Objects: [{ Key: key }, { Key: `${key}${INFO}` }, { Key: `${key}.part` }], Quiet: true },
        }),
      )
      .catch((err: unknown) => {
        throw unavailable(err, 'removing');
      });
  }

  /**
   * S3Store's own deleteExpired lists every multipart upload of the bucket, other services' included, aborts the
   * old ones, and never sees a finished upload: this one looks only below our prefix, at both.
   */
  async removeExpired(before: Date): Promise<number> {
    // Unfinished: a multipart upload started at creation. The metadata goes first: with it and no multipart upload,
    // S3Store would take the upload for a finished one.
    let removed = await this.storage.abortUploadsBefore(this.prefix, before, (key) => this.discard(this.fileIdOf(key)));
    // Finished and never adopted and discarded: the metadata, written at creation (again when the length came).
    let after: string | undefined;
    do {
      const page = await this.storage.client.send(
        new ListObjectsV2Command({ Bucket: this.storage.bucket, Prefix: this.prefix, StartAfter: after }),
      );
      for (const { Key: key, LastModified: written } of page.Contents ?? []) {
        if (key?.endsWith(INFO) && written && written < before) {
          await this.discard(this.fileIdOf(key.slice(0, -INFO.length)));
          removed++;
        }
      }
      after = page.IsTruncated ? page.Contents?.at(-1)?.Key : undefined;
    } while (after);
    return removed;
  }
}
