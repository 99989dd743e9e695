// The blob store: where the bytes of a file (and its derived files) live, behind a small interface
// so an object store can replace the local disk in one place.
import type { Readable } from 'node:stream';
import type { ResumableStore } from '../tus/stores.js';

export { LocalDiskStore } from './localDisk.js';
export { S3BlobStore, type S3Settings } from './s3.js';

export interface StoredBlob {
  size: number;
  /** Hex SHA-256, computed while the bytes streamed in. */
  sha256: string;
  /** The first bytes (up to HEAD_BYTES), for sniffing the kind without a second read. */
  head: Buffer;
}

export interface ByteRange {
  start: number;
  /** Inclusive, as in HTTP Range. */
  end: number;
}

/** A blob as a parser process reads it: a local path, or a URL that answers GET with Range. */
export type BlobSource = { path: string } | { url: string };

/** Derived files a blob may have beside the original (removed with it). */
export const BLOB_VARIANTS = ['thumbnail', 'preview'] as const;
export type BlobVariant = (typeof BLOB_VARIANTS)[number];

/** Bytes enough for magic-number and text detection. */
export const HEAD_BYTES = 4100;

export interface BlobStore {
  /**
   * Streams `source` into a temporary file, then moves it into place under `id` (and `variant`).
   * Throws BlobTooLargeError past `maxBytes`; a failed write leaves nothing behind.
   */
  put(id: string, source: Readable, options: { maxBytes: number; variant?: BlobVariant }): Promise<StoredBlob>;
  /**
   * The bytes, or a range of them. Rejects with code ENOENT when there is no such blob.
   */
  open(id: string, options?: { range?: ByteRange; variant?: BlobVariant }): Promise<Readable>;
  /**
   * Where a parser reads the blob by ranges itself, without a copy: its path on this machine, or a presigned
   * GET of the object that stays valid `validForMs`. Checks nothing: a missing blob is found by whoever reads.
   */
  source(id: string, validForMs: number): Promise<BlobSource>;
  /**
   * A short-lived URL that downloads the blob straight from the store, answered with these headers; only
   * stores that can sign one (a bucket) have it.
   */
  downloadUrl?(id: string, headers: { contentDisposition: string; contentType: string }): Promise<string>;
  /** Direct uploads into the store, where a client can reach it without the API (a bucket). */
  readonly direct?: DirectUploadTarget;
  /**
   * The store's resumable (tus) uploads, kept in its own place by the tus DataStore that suits it, and expiring
   * `expireAfterMs` after their creation; made once per process.
   */
  resumable(expireAfterMs: number): ResumableStore;
  /** Removes the blob and every variant of it, or with `variant` that one alone; a missing blob is not an error. */
  remove(id: string, options?: { variant?: BlobVariant }): Promise<void>;
  /** Answers when the store can be written; throws otherwise (readiness). */
  ping(): Promise<void>;

  // For the reconciler's sweep of leftovers:
  /** Removes temporary files of uploads that never finished, last written before `before`; returns how many. */
  removeTemporaryBefore(before: Date): Promise<number>;
  /**
   * The ids that have a blob (original or derived) among the next `maxKeys` keys after `cursor` (from the first
   * without one), in the store's key order, and the cursor the next page starts after: null once at the end.
   */
  listIds(cursor: string | null, maxKeys: number): Promise<BlobIdPage>;
  /** When any blob of the id was last written; null when it has none. */
  writtenAt(id: string): Promise<Date | null>;
}

/**
 * Direct uploads into the store: the client PUTs the bytes under the blob's own name with a presigned request
 * that can only create it (never replace a blob that exists), and the upload is completed from what arrived.
 */
export interface DirectUploadTarget {
  /** The largest object one presigned PUT may carry. */
  readonly maxBytes: number;
  /**
   * A presigned PUT of exactly `size` bytes (the length is signed in) that creates the blob of `id` and is
   * refused once it exists, with the headers the client must send.
   */
  uploadUrl(
    id: string,
    size: number,
    expiresInSeconds: number,
  ): Promise<{ url: string; headers: Record<string, string> }>;
  /** The uploaded blob's size and its first `length` bytes (for sniffing), in one read; null while there is none. */
  uploaded(id: string, length: number): Promise<{ size: number; head: Buffer } | null>;
  /**
   * Removes the bytes of the blob and its variants but leaves an empty object at its key, on which the presigned
   * PUT is refused: a replay of it cannot put bytes back. `BlobStore.remove` takes the placeholder away.
   */
  removeBarringReplays(id: string): Promise<void>;
}

export interface BlobIdPage {
  ids: string[];
  cursor: string | null;
}

export class BlobTooLargeError extends Error {
  override name = 'BlobTooLargeError';
  constructor(readonly maxBytes: number) {
    super(`The blob is larger than ${maxBytes} bytes.`);
  }
}

/** The store did not answer, or answered that it cannot now (an object store's 5xx, a refused connection). */
export class StorageUnavailableError extends Error {
  override name = 'StorageUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
  }
}

/** True when the error means the disk (or quota) is full. */
export const isStorageFull = (err: unknown): boolean =>
  ['ENOSPC', 'EDQUOT'].includes((err as { code?: string } | null)?.code ?? '');
