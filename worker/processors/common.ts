// Every kind's common ground: re-read the stored bytes and check them against the recorded sha256 and
// size, then (for kinds with more to say) run the kind's analysis in a parsing thread.
import { createHash } from 'node:crypto';
import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { CommonResult } from '../../core/results/index.js';
import { ProcessingError, type Analyzed, type AnalysisInput, type Processor, type ProcessorInput } from './types.js';

/** A WebP of at most 256 × 256 px stays far below this; anything bigger is a bug, not a preview. */
const THUMBNAIL_MAX_BYTES = 1024 * 1024;

export async function verifyStoredBytes({ file, storage }: ProcessorInput): Promise<CommonResult> {
  let stream;
  try {
    stream = await storage.open(file.id);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ProcessingError('blob_missing', 'The stored bytes of this file are missing.');
    }
    throw err;
  }
  const hash = createHash('sha256');
  let bytesRead = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytesRead += chunk.length;
  }
  if (bytesRead !== file.size || hash.digest('hex') !== file.sha256) {
    throw new ProcessingError(
      'checksum_mismatch',
      `The stored bytes (${bytesRead}) do not match what was uploaded (${file.size} bytes, sha256 ${file.sha256.slice(0, 12)}…).`,
    );
  }
  return { sha256_verified: true, bytes_read: bytesRead, warnings: [] };
}

/** Up to `length` bytes of the file from `position` (fewer near its end). */
export async function readBytes(path: string, length: number, position = 0): Promise<Buffer> {
  const file = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await file.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

/**
 * A processor that verifies the bytes, then runs `analysis` (exported by `module`, the caller's
 * `import.meta.url`) in a parsing thread and stores the thumbnail it may return.
 */
export function analyzingProcessor<F extends object>(
  resultSchema: Processor['resultSchema'],
  module: string,
  analysis: (input: AnalysisInput) => Promise<Analyzed<F>>,
): Processor {
  return {
    resultSchema,
    module,
    async process(input) {
      const { file, storage, limits } = input;
      const common = await verifyStoredBytes(input);
      const path = await storage.localPath(file.id);
      const analyzed = await input.inThread(module, analysis, { path, contentType: file.content_type, size: file.size, limits });
      if (analyzed.thumbnail) {
        await storage.put(file.id, Readable.from([Buffer.from(analyzed.thumbnail)]), { maxBytes: THUMBNAIL_MAX_BYTES, variant: 'thumbnail' });
      }
      return {
        result: { ...common, ...analyzed.fields, warnings: [...common.warnings, ...analyzed.warnings] },
        thumbnail: Boolean(analyzed.thumbnail),
      };
    },
  };
}
