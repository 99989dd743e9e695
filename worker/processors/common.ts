// Every kind's common ground: re-read the stored bytes and check them against the recorded sha256 and
// size, then (for kinds with more to say) run the kind's analysis in a parser process.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import type { CommonResult } from '../../core/results/index.js';
import { ProcessingError, type Analyzed, type AnalysisInput, type Processor, type ProcessorInput } from './types.js';

/** A WebP of at most 256 × 256 px stays far below this; anything bigger is a bug, not a preview. */
const THUMBNAIL_MAX_BYTES = 1024 * 1024;

export async function verifyStoredBytes({ file, storage }: ProcessorInput): Promise<CommonResult> {
  return (await readVerified(file, () => storage.open(file.id), false)).common;
}

/** Reads the bytes `open` gives, checks them against the record, and hands them back too when `keep`. */
async function readVerified(
  file: ProcessorInput['file'],
  open: () => Promise<Readable>,
  keep: boolean,
): Promise<{ common: CommonResult; bytes?: Buffer }> {
  let stream;
  try {
    stream = await open();
  } catch (err) {
    throw blobMissing(err);
  }
  const hash = createHash('sha256');
  const kept: Buffer[] = [];
  let bytesRead = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    hash.update(chunk);
    bytesRead += chunk.length;
    // Never more than the record says: a file grown on disk fails the check below anyway.
    if (keep && bytesRead <= file.size) kept.push(chunk);
  }
  if (bytesRead !== file.size || hash.digest('hex') !== file.sha256) {
    throw new ProcessingError(
      'checksum_mismatch',
      `The stored bytes (${bytesRead}) do not match what was uploaded (${file.size} bytes, sha256 ${file.sha256.slice(0, 12)}…).`,
    );
  }
  const common = { sha256_verified: true, bytes_read: bytesRead, warnings: [] };
  return keep ? { common, bytes: Buffer.concat(kept) } : { common };
}

function blobMissing(err: unknown): unknown {
  if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return err;
  return new ProcessingError('blob_missing', 'The stored bytes of this file are missing.');
}

/** A local file as a stream that rejects (rather than errors later) when the file is missing. */
async function openLocal(path: string): Promise<Readable> {
  const handle = await open(path, 'r');
  return handle.createReadStream();
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
 * A file read through 64 KiB windows, for walks over headers (boxes, tar blocks, zip records): a file of
 * many small ones costs a system call per window instead of one per header.
 */
export class WindowedFile {
  private window = Buffer.alloc(0);
  private windowAt = 0;

  constructor(readonly file: FileHandle) {}

  /** The `length` bytes at `position`, fewer at the end of the file; a view that stays valid. */
  async bytesAt(position: number, length: number): Promise<Buffer> {
    const from = position - this.windowAt;
    if (from >= 0 && from + length <= this.window.length) return this.window.subarray(from, from + length);
    // A new buffer per window, never refilled: views handed out earlier keep their bytes.
    const window = Buffer.allocUnsafe(Math.max(WINDOW_BYTES, length));
    const { bytesRead } = await this.file.read(window, 0, window.length, position);
    this.window = window.subarray(0, bytesRead);
    this.windowAt = position;
    return this.window.subarray(0, length);
  }
}

const WINDOW_BYTES = 64 * 1024;

export interface AnalyzingOptions {
  /**
   * Files up to this size are read once and analysed on the event loop, skipping the round trip to a parser
   * process and the second read, which cost more than the analysis itself for small files.
   * Only for analyses in plain JavaScript whose time grows linearly with the size: at this size
   * they hold the event loop for about a millisecond (see ARCHITECTURE.md, Processing).
   */
  inlineMaxBytes?: number;
}

/**
 * A processor that verifies the bytes, then runs `analysis` (exported by `module`, the caller's
 * `import.meta.url`) in a parser process, or inline for small files, and stores the thumbnail it may return.
 */
export function analyzingProcessor<F extends object>(
  module: string,
  analysis: (input: AnalysisInput) => Promise<Analyzed<F>>,
  options: AnalyzingOptions = {},
): Processor {
  return {
    module,
    async process(input) {
      const { file, storage, limits } = input;
      // The bytes are checked where the analysis reads them: for a bucket, the staged copy, pulled once.
      let staged = false;
      const { common, analyzed } = await storage
        .withLocalFile(file.id, async (path) => {
          staged = true;
          const inline = file.size <= (options.inlineMaxBytes ?? -1);
          const { common, bytes } = await readVerified(file, () => openLocal(path), inline);
          const analysisInput: AnalysisInput = { path, contentType: file.content_type, size: file.size, limits };
          const analyzed = bytes
            ? await analysis({ ...analysisInput, bytes })
            : await input.inParser(module, analysis, analysisInput);
          return { common, analyzed };
        })
        .catch((err: unknown) => {
          throw staged ? err : blobMissing(err);
        });
      if (analyzed.thumbnail) {
        await storage.put(file.id, Readable.from([Buffer.from(analyzed.thumbnail)]), {
          maxBytes: THUMBNAIL_MAX_BYTES,
          variant: 'thumbnail',
        });
      }
      return {
        result: { ...common, ...analyzed.fields, warnings: [...common.warnings, ...analyzed.warnings] },
        thumbnail: Boolean(analyzed.thumbnail),
      };
    },
  };
}
