// What every store does to bytes on their way in: count them against the limit, hash them, keep the head
// for sniffing; and a pipe that settles once, after every stream has let go.
import { createHash } from 'node:crypto';
import { Transform, type Readable, type Writable } from 'node:stream';
import { BlobTooLargeError, HEAD_BYTES, type StoredBlob } from './index.js';

/** Passes bytes through while counting, hashing and keeping the head; fails past the size limit. */
export class BlobMeter extends Transform {
  // Not `size`: lib-storage reads a Body's size as its length.
  private counted = 0;
  private readonly hash = createHash('sha256');
  private readonly headChunks: Buffer[] = [];
  private headLength = 0;

  /** Set once the bytes went over the limit. */
  failure: BlobTooLargeError | undefined;

  constructor(private readonly maxBytes: number) {
    super();
  }

  override _transform(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (err?: Error | null, data?: Buffer) => void,
  ): void {
    this.counted += chunk.length;
    if (this.counted > this.maxBytes) return callback((this.failure = new BlobTooLargeError(this.maxBytes)));
    this.hash.update(chunk);
    if (this.headLength < HEAD_BYTES) {
      this.headChunks.push(chunk);
      this.headLength += chunk.length;
    }
    callback(null, chunk);
  }

  blob(): StoredBlob {
    return {
      size: this.counted,
      sha256: this.hash.digest('hex'),
      head: Buffer.concat(this.headChunks).subarray(0, HEAD_BYTES),
    };
  }
}

/**
 * source → meter → sink, settled when the sink has closed its file or anything failed (then every stream
 * is destroyed). stream.pipeline does the same, but builds an AbortController and a DOMException per call:
 * measurable on the path of every upload.
 */
export function pipeInto(source: Readable, meter: Transform, sink: Writable): Promise<void> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      source.unpipe(meter);
      meter.destroy();
      // A file stream destroyed while still opening creates its file after all: settle only once it has
      // closed, so the caller's removal of the temporary file comes after it exists.
      if (sink.closed) return reject(err);
      sink.once('close', () => reject(err));
      sink.destroy();
    };
    source.once('error', fail);
    source.once('close', () => {
      if (!source.readableEnded) fail(new Error('The upload stream closed before its end.'));
    });
    meter.once('error', fail);
    sink.once('error', fail);
    sink.once('close', () => {
      if (settled) return;
      if (!sink.writableFinished) return fail(new Error('The blob file closed before all bytes were written.'));
      settled = true;
      resolve();
    });
    source.pipe(meter).pipe(sink);
  });
}
