// One stream into one object, in parts, without copying a byte: a part is the list of the stream's own chunks
// (a slice where a chunk straddles two parts), sent as a stream body of known length, and let go once sent.
// At most `inFlight` parts are on their way plus the one filling, whatever the size. A stream body also spares
// the SDK's SHA-256 of every part (it signs a Buffer body's hash; a stream goes as UNSIGNED-PAYLOAD, and the
// bytes are hashed once, by the meter), but the SDK never retries one: a part is retried here, from its chunks.
// Node streams never reuse a buffer they emitted, so holding the chunks is safe.
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';
import { isTransient } from './s3Errors.js';

/** S3 takes at most 10,000 parts, each but the last at least 5 MiB. */
const MAX_PARTS = 10_000;
const MIN_PART_BYTES = 5 * 1024 * 1024;

/** Tries per request body, the first included, when the store does not answer or answers 5xx. */
const ATTEMPTS = 3;
const RETRY_BASE_MS = 200;

/** The smallest part size that fits `maxBytes` in S3's part count. */
export const partBytesFor = (maxBytes: number): number => Math.max(MIN_PART_BYTES, Math.ceil(maxBytes / MAX_PARTS));

export interface StreamedObject {
  client: S3Client;
  bucket: string;
  key: string;
  partBytes: number;
  inFlight: number;
}

/**
 * Writes `body` to the object: one PutObject when it fits in a part, else a multipart upload, aborted when
 * anything fails (the body's own error included, which is what rejects).
 */
export async function writeObject(body: AsyncIterable<Buffer>, target: StreamedObject): Promise<void> {
  const { client, bucket: Bucket, key: Key, partBytes, inFlight } = target;
  let chunks: Buffer[] = [];
  let filled = 0;
  let uploadId: string | undefined;
  const parts: CompletedPart[] = [];
  const sending = new Set<Promise<void>>();
  let sendFailure: Error | undefined;
  let partCount = 0;

  /** Hands the full part to a sender, once fewer than `inFlight` are on their way. */
  const flush = async () => {
    uploadId ??= (await client.send(new CreateMultipartUploadCommand({ Bucket, Key }))).UploadId;
    while (sending.size >= inFlight) await Promise.race(sending);
    if (sendFailure) throw sendFailure;
    const [part, length, PartNumber] = [chunks, filled, ++partCount];
    const task: Promise<void> = withRetries(() =>
      client.send(
        new UploadPartCommand({
          Bucket,
          Key,
          UploadId: uploadId,
          PartNumber,
          Body: Readable.from(part),
          ContentLength: length,
        }),
      ),
    ).then(
      ({ ETag }) => {
        sending.delete(task);
        parts[PartNumber - 1] = { ETag, PartNumber };
      },
      (err: unknown) => {
        sending.delete(task);
        sendFailure ??= err instanceof Error ? err : new Error(String(err));
      },
    );
    sending.add(task);
    chunks = [];
    filled = 0;
  };

  try {
    for await (const chunk of body) {
      for (let offset = 0; offset < chunk.length;) {
        const end = Math.min(chunk.length, offset + partBytes - filled);
        chunks.push(offset === 0 && end === chunk.length ? chunk : chunk.subarray(offset, end));
        filled += end - offset;
        offset = end;
        if (filled === partBytes) await flush();
      }
    }
    if (uploadId === undefined) {
      const part = chunks;
      await withRetries(() =>
        client.send(new PutObjectCommand({ Bucket, Key, Body: Readable.from(part), ContentLength: filled })),
      );
      return;
    }
    if (filled > 0) await flush();
    await Promise.all(sending);
    if (sendFailure) throw sendFailure;
    await client.send(
      new CompleteMultipartUploadCommand({ Bucket, Key, UploadId: uploadId, MultipartUpload: { Parts: parts } }),
    );
  } catch (err) {
    await Promise.allSettled(sending);
    if (uploadId !== undefined) {
      // Unreachable store: the unfinished upload is the reconciler's (removeTemporaryBefore).
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId: uploadId })).catch(() => undefined);
    }
    throw err;
  }
}

/** `send`, again after a growing pause while the store does not answer; each try makes a fresh body. */
async function withRetries<T>(send: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await send();
    } catch (err) {
      if (attempt >= ATTEMPTS || !isTransient(err)) throw err;
      await new Promise((resolve) => setTimeout(resolve, RETRY_BASE_MS * 4 ** (attempt - 1) * (0.5 + Math.random())));
    }
  }
}
