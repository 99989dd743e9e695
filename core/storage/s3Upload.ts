// One stream into one object, in parts, with a fixed set of part buffers reused from the first part to the last:
// at most `inFlight` parts on their way plus the one filling, whatever the size (lib-storage's Upload allocates
// and concatenates every part anew). Measured on a 1 GiB upload, the API's RSS grew about as much either way
// (106 MiB with this writer, 92 with lib-storage, 28 to 44 on the disk store, in full `make bench` runs): what
// grows is not these buffers, and is still to be found (ARCHITECTURE.md, Object storage).
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
} from '@aws-sdk/client-s3';

/** S3 takes at most 10,000 parts, each but the last at least 5 MiB. */
const MAX_PARTS = 10_000;
const MIN_PART_BYTES = 5 * 1024 * 1024;

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
  const spare: Buffer[] = [];
  const take = () => spare.pop() ?? Buffer.allocUnsafe(partBytes);
  let part = take();
  let filled = 0;
  let uploadId: string | undefined;
  const parts: CompletedPart[] = [];
  const sending = new Set<Promise<void>>();
  let sendFailure: Error | undefined;
  let partCount = 0;

  const sendPart = async (buffer: Buffer, length: number, PartNumber: number) => {
    const { ETag } = await client.send(
      new UploadPartCommand({
        Bucket,
        Key,
        UploadId: uploadId,
        PartNumber,
        Body: buffer.subarray(0, length),
        ContentLength: length,
      }),
    );
    parts[PartNumber - 1] = { ETag, PartNumber };
  };
  /** Hands the full part to a sender, once fewer than `inFlight` are on their way. */
  const flush = async () => {
    uploadId ??= (await client.send(new CreateMultipartUploadCommand({ Bucket, Key }))).UploadId;
    while (sending.size >= inFlight) await Promise.race(sending);
    if (sendFailure) throw sendFailure;
    const [buffer, length, number] = [part, filled, ++partCount];
    const task: Promise<void> = sendPart(buffer, length, number).then(
      () => {
        sending.delete(task);
        spare.push(buffer);
      },
      (err: unknown) => {
        sending.delete(task);
        sendFailure ??= err instanceof Error ? err : new Error(String(err));
      },
    );
    sending.add(task);
    part = take();
    filled = 0;
  };

  try {
    for await (const chunk of body) {
      for (let offset = 0; offset < chunk.length;) {
        const copied = chunk.copy(part, filled, offset, Math.min(chunk.length, offset + partBytes - filled));
        filled += copied;
        offset += copied;
        if (filled === partBytes) await flush();
      }
    }
    if (uploadId === undefined) {
      await client.send(new PutObjectCommand({ Bucket, Key, Body: part.subarray(0, filled), ContentLength: filled }));
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
