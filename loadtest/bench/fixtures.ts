// Request bodies for the benchmark, generated in memory.
import { png } from '../../test/support/fixtures.js';

const WORDS = [
  'file',
  'processor',
  'upload',
  'queue',
  'worker',
  'stream',
  'bytes',
  'index',
  'cursor',
  'tenant',
  'latency',
  'throughput',
];

/** Plain text of about `bytes` bytes, different for each `seed`. */
export function textFile(bytes: number, seed: number): Buffer {
  const parts: string[] = [];
  let length = 0;
  for (let n = seed; length < bytes; n++) {
    const word = WORDS[(n * 7 + seed) % WORDS.length]!;
    const piece = n % 12 === 11 ? `${word}\n` : `${word} `;
    parts.push(piece);
    length += piece.length;
  }
  return Buffer.from(parts.join('').slice(0, bytes));
}

/** A PNG of the given size whose pixels vary with `seed`. */
export const pngImage = (width: number, height: number, seed: number): Buffer => png(width, height, seed);

/** A multipart/form-data body with one file part. */
export function multipartBody(boundary: string, filename: string, content: Buffer): Buffer {
  return Buffer.concat([
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
    content,
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}
