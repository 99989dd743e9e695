// Blobs in an S3-compatible bucket (AWS S3, Ceph RGW, MinIO, R2, GCS interoperability):
//   <prefix>blobs/<xx>/<id>[.<variant>]   xx the last two hex digits of the id, as on disk
//   <prefix>tus/<id>[.info|.part]         resumable uploads (s3Resumable.ts)
// An upload streams in as a multipart upload (s3Upload.ts: parts of the stream's own chunks, PARTS_IN_FLIGHT at
// once, so memory stays bounded whatever the size); until it completes, the bytes are an unfinished multipart upload,
// which is what "temporary" means here: the reconciler aborts those that were never completed. The shards
// are only key prefixes here, kept so a bucket and a directory name a blob alike.
import type { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import {
  BLOB_VARIANTS,
  type BlobIdPage,
  type BlobSource,
  type BlobStore,
  type BlobVariant,
  type ByteRange,
  type DirectUploadTarget,
  type StoredBlob,
} from './index.js';
import { BlobMeter } from './meter.js';
import { missing, statusOf, unavailable } from './s3Errors.js';
import { ResumableBucketUploads } from './s3Resumable.js';
import type { ResumableStore } from '../tus/stores.js';
import { partBytesFor, writeObject } from './s3Upload.js';

export interface S3Settings {
  bucket: string;
  /** Prepended to every key; empty, or ends with "/". */
  prefix: string;
  /** Empty for AWS itself. */
  endpoint: string | null;
  region: string;
  forcePathStyle: boolean;
}

const SAFE_KEY = /^[0-9a-z-]{8,64}$/i;
const shardName = (shard: number) => shard.toString(16).padStart(2, '0');

const SILENT = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

/** SigV4's limit on a presigned URL's lifetime: 7 days. */
const MAX_PRESIGN_SECONDS = 7 * 24 * 3600;

/** How long a presigned download stays valid. */
const DOWNLOAD_URL_SECONDS = 300;

/** Parts on their way at once: with 5 MiB parts, at most about 25 MiB of one upload in memory (s3Upload.ts). */
const PARTS_IN_FLIGHT = 4;

export class S3BlobStore implements BlobStore {
  readonly direct: DirectUploadTarget = new ConditionalUploads(this);
  readonly client: S3Client;
  /** What the client was made with, for clients of other libraries on the same bucket (tus's S3Store). */
  readonly clientConfig: S3ClientConfig;
  private readonly listPageSize: number;

  /** `client` settings override ours (credentials, for one); `listPageSize` is S3's 1000 unless a test pages. */
  constructor(
    readonly settings: S3Settings,
    { client, listPageSize = 1000 }: { client?: Partial<S3ClientConfig>; listPageSize?: number } = {},
  ) {
    this.listPageSize = listPageSize;
    this.clientConfig = {
      region: settings.region,
      forcePathStyle: settings.forcePathStyle,
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      // The SDK's default sends streamed bodies aws-chunked with a CRC trailer, which Ceph and other
      // S3-compatible stores refuse (411); checksums are ours to verify anyway (the worker re-hashes).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
      requestHandler: { connectionTimeout: 5_000, requestTimeout: 60_000 },
      // Its one warning (a stream body it will not retry) is ours to handle: s3Upload.ts retries, errors are logged.
      logger: SILENT,
      ...client,
    };
    this.client = new S3Client(this.clientConfig);
  }

  get bucket(): string {
    return this.settings.bucket;
  }

  /** The object key of a blob; the id must look like an id (it never comes from a client unchecked). */
  keyOf(id: string, variant?: BlobVariant): string {
    if (!SAFE_KEY.test(id)) throw new Error(`Refusing unsafe blob key ${JSON.stringify(id)}.`);
    return `${this.shardPrefix(parseInt(id.slice(-2), 16))}${variant ? `${id}.${variant}` : id}`;
  }

  async put(id: string, source: Readable, options: { maxBytes: number; variant?: BlobVariant }): Promise<StoredBlob> {
    const meter = new BlobMeter(options.maxBytes);
    let sourceFailure: Error | undefined;
    const fail = (err: Error) => meter.destroy((sourceFailure = err));
    const closed = () => {
      if (!source.readableEnded) fail(new Error('The upload stream closed before its end.'));
    };
    source.once('error', fail);
    source.once('close', closed);
    source.pipe(meter);
    try {
      await writeObject(meter, {
        client: this.client,
        bucket: this.bucket,
        key: this.keyOf(id, options.variant),
        partBytes: partBytesFor(options.maxBytes),
        inFlight: PARTS_IN_FLIGHT,
      });
    } catch (err) {
      source.unpipe(meter);
      meter.destroy();
      // Why the bytes stopped (the client gone, too large) says more than the SDK's wrapping of it.
      throw sourceFailure ?? meter.failure ?? unavailable(err, 'writing');
    } finally {
      source.off('error', fail);
      source.off('close', closed);
    }
    return meter.blob();
  }

  async open(id: string, options: { range?: ByteRange; variant?: BlobVariant } = {}): Promise<Readable> {
    const { range } = options;
    const answer = await this.client
      .send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.keyOf(id, options.variant),
          ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}),
        }),
      )
      .catch((err: unknown) => {
        throw missing(err) ?? unavailable(err, 'reading');
      });
    return answer.Body as Readable;
  }

  resumable(expireAfterMs: number): ResumableStore {
    return new ResumableBucketUploads(this, expireAfterMs);
  }

  /** A presigned GET: a parser process reads the ranges it needs over HTTP, with no copy and no SDK. */
  async source(id: string, validForMs: number): Promise<BlobSource> {
    const command = new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(id) });
    const expiresIn = Math.min(MAX_PRESIGN_SECONDS, Math.max(1, Math.ceil(validForMs / 1000)));
    return { url: await getSignedUrl(this.client, command, { expiresIn }) };
  }

  downloadUrl(id: string, headers: { contentDisposition: string; contentType: string }): Promise<string> {
    const command = new GetObjectCommand({
      Bucket: this.bucket,
      Key: this.keyOf(id),
      ResponseContentDisposition: headers.contentDisposition,
      ResponseContentType: headers.contentType,
    });
    return getSignedUrl(this.client, command, { expiresIn: DOWNLOAD_URL_SECONDS });
  }

  async remove(id: string, options: { variant?: BlobVariant } = {}): Promise<void> {
    const keys = options.variant ? [this.keyOf(id, options.variant)] : this.keysOf(id);
    // One DeleteObject per key: DeleteObjects needs a Content-MD5 that some S3-compatible stores insist on.
    await Promise.all(
      keys.map((Key) =>
        this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })).catch((err: unknown) => {
          throw unavailable(err, 'removing');
        }),
      ),
    );
  }

  async ping(): Promise<void> {
    await this.client.send(new HeadBucketCommand({ Bucket: this.bucket }));
  }

  removeTemporaryBefore(before: Date): Promise<number> {
    return this.abortUploadsBefore(`${this.settings.prefix}blobs/`, before);
  }

  /**
   * Aborts the multipart uploads below `prefix` started before `before`, listed page by page; `first` runs before
   * each abort (to remove what the upload kept beside it). Answers how many.
   */
  async abortUploadsBefore(prefix: string, before: Date, first?: (key: string) => Promise<void>): Promise<number> {
    let removed = 0;
    let markers: { KeyMarker?: string; UploadIdMarker?: string } = {};
    for (;;) {
      const page = await this.client.send(
        new ListMultipartUploadsCommand({
          Bucket: this.bucket,
          Prefix: prefix,
          MaxUploads: this.listPageSize,
          ...markers,
        }),
      );
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.Initiated || upload.Initiated >= before) continue;
        await first?.(upload.Key);
        await this.client.send(
          new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: upload.Key, UploadId: upload.UploadId }),
        );
        removed++;
      }
      if (!page.IsTruncated) return removed;
      markers = { KeyMarker: page.NextKeyMarker, UploadIdMarker: page.NextUploadIdMarker };
    }
  }

  async listIds(cursor: string | null, maxKeys: number): Promise<BlobIdPage> {
    // Every shard in one listing, page after page: its cost follows the keys, not the 256 prefixes.
    const prefix = `${this.settings.prefix}blobs/`;
    const ids = new Set<string>();
    let after = cursor;
    let listed = 0;
    for (;;) {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.bucket,
          Prefix: prefix,
          MaxKeys: Math.min(this.listPageSize, maxKeys - listed),
          ...(after ? { StartAfter: after } : {}),
        }),
      );
      const keys = (page.Contents ?? []).flatMap((object) => (object.Key ? [object.Key] : []));
      for (const key of keys) {
        const [shard, name, ...deeper] = key.slice(prefix.length).split('/');
        const id = name?.split('.')[0];
        if (shard?.length === 2 && id && !deeper.length && SAFE_KEY.test(id)) ids.add(id);
      }
      listed += keys.length;
      after = keys.at(-1) ?? after;
      if (!page.IsTruncated || !keys.length) return { ids: [...ids], cursor: null };
      if (listed >= maxKeys) return { ids: [...ids], cursor: after };
    }
  }

  async writtenAt(id: string): Promise<Date | null> {
    const keys = this.keysOf(id);
    const times = await Promise.all(
      keys.map((Key) =>
        this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key })).then(
          (head) => head.LastModified?.getTime() ?? 0,
          (err: unknown) => {
            if (missing(err)) return 0;
            throw unavailable(err, 'reading');
          },
        ),
      ),
    );
    const latest = Math.max(...times);
    return latest ? new Date(latest) : null;
  }

  close(): void {
    this.client.destroy();
  }

  /** The keys of a blob and of every variant it may have. */
  private keysOf(id: string): string[] {
    return [this.keyOf(id), ...BLOB_VARIANTS.map((variant) => this.keyOf(id, variant))];
  }

  private shardPrefix(shard: number): string {
    return `${this.settings.prefix}blobs/${shardName(shard)}/`;
  }
}

/** S3's limit for one PUT (and one CopyObject): 5 GiB. */
const SINGLE_PUT_MAX_BYTES = 5 * 1024 ** 3;

/**
 * Direct uploads PUT straight to the blob's own key, with the length and `If-None-Match: *` signed in: the
 * bucket takes exactly the announced size, and only while there is no object, so a PUT replayed after
 * completion (a presigned URL cannot be revoked) is refused 412 and can never change a File's bytes; after the
 * File is deleted an empty placeholder at the key keeps refusing it, until the URL is dead.
 */
class ConditionalUploads implements DirectUploadTarget {
  readonly maxBytes = SINGLE_PUT_MAX_BYTES;

  constructor(private readonly store: S3BlobStore) {}

  async uploadUrl(id: string, size: number, expiresInSeconds: number) {
    const { client, bucket } = this.store;
    const command = new PutObjectCommand({
      Bucket: bucket,
      Key: this.store.keyOf(id),
      ContentLength: size,
      IfNoneMatch: '*',
    });
    const url = await getSignedUrl(client, command, { expiresIn: expiresInSeconds });
    return { url, headers: { 'Content-Length': String(size), 'If-None-Match': '*' } };
  }

  async uploaded(id: string, length: number): Promise<{ size: number; head: Buffer } | null> {
    const { client, bucket } = this.store;
    try {
      // One ranged GET: its Content-Range carries the whole size ("bytes 0-4099/123456").
      const answer = await client.send(
        new GetObjectCommand({ Bucket: bucket, Key: this.store.keyOf(id), Range: `bytes=0-${length - 1}` }),
      );
      const head = Buffer.from(await answer.Body!.transformToByteArray());
      const size = Number(/\/(\d+)$/.exec(answer.ContentRange ?? '')?.[1] ?? answer.ContentLength ?? head.length);
      return { size, head };
    } catch (err) {
      if (missing(err)) return null;
      // An empty object has no byte 0 to range over.
      if (statusOf(err) === 416) return { size: 0, head: Buffer.alloc(0) };
      throw unavailable(err, 'reading');
    }
  }

  async removeBarringReplays(id: string): Promise<void> {
    const { client, bucket } = this.store;
    // The bytes are overwritten, not deleted first: there is no moment without an object for a replay to land in.
    const placeholder = new PutObjectCommand({ Bucket: bucket, Key: this.store.keyOf(id), Body: '' });
    const variants = BLOB_VARIANTS.map(
      (variant) => new DeleteObjectCommand({ Bucket: bucket, Key: this.store.keyOf(id, variant) }),
    );
    await Promise.all([client.send(placeholder), ...variants.map((command) => client.send(command))]).catch(
      (err: unknown) => {
        throw unavailable(err, 'removing');
      },
    );
  }
}
