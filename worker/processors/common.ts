// Every kind's common ground: re-read the stored bytes and check them against the recorded sha256 and
// size, then (for kinds with more to say) run the kind's analysis in a parser process.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { CommonResult } from '../../core/results/index.js';
import { BLOB_VARIANTS, type BlobSource, type BlobStore } from '../../core/storage/index.js';
import { openStored, withBlob, type BlobReader } from './blobSource.js';
import { ProcessingError, type Analyzed, type AnalysisInput, type Processor, type ProcessorInput } from './types.js';

/** A WebP of at most 1024 × 1024 px stays far below this; anything bigger is a bug, not a rendering. */
const RENDERING_MAX_BYTES = 4 * 1024 * 1024;

/** A presigned URL's expiry is checked by the store's clock: this much beyond the deadline allows for skew. */
const SOURCE_CLOCK_SKEW_MS = 60_000;

export async function verifyStoredBytes({ file, storage, verified }: ProcessorInput): Promise<CommonResult> {
  if (verified) return verifiedCommon(file.size);
  return (await readVerified(file, storage, false)).common;
}

const verifiedCommon = (bytesRead: number): CommonResult => ({
  sha256_verified: true,
  bytes_read: bytesRead,
  warnings: [],
});

/** Reads the file's stored bytes, checks them against the record, and hands them back too when `keep`. */
async function readVerified(
  file: ProcessorInput['file'],
  storage: BlobStore,
  keep: boolean,
): Promise<{ common: CommonResult; bytes?: Buffer }> {
  const stream = await openStored(storage, file.id);
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
  const common = verifiedCommon(bytesRead);
  return keep ? { common, bytes: Buffer.concat(kept) } : { common };
}

/** Up to `length` bytes of the blob from `position` (fewer near its end). */
export function readBytes(source: BlobSource, length: number, position = 0): Promise<Buffer> {
  return withBlob(source, async (reader) => {
    const buffer = Buffer.alloc(length);
    const { bytesRead } = await reader.read(buffer, 0, length, position);
    return buffer.subarray(0, bytesRead);
  });
}

/**
 * A blob read through 64 KiB windows, for walks over headers (boxes, tar blocks, zip records): a blob of
 * many small ones costs a system call or a ranged GET per window instead of one per header.
 */
export class WindowedFile {
  private window = Buffer.alloc(0);
  private windowAt = 0;

  constructor(readonly reader: BlobReader) {}

  /** The `length` bytes at `position`, fewer at the end of the file; a view that stays valid. */
  async bytesAt(position: number, length: number): Promise<Buffer> {
    const from = position - this.windowAt;
    if (from >= 0 && from + length <= this.window.length) return this.window.subarray(from, from + length);
    // A new buffer per window, never refilled: views handed out earlier keep their bytes.
    const window = Buffer.allocUnsafe(Math.max(WINDOW_BYTES, length));
    const { bytesRead } = await this.reader.read(window, 0, window.length, position);
    this.window = window.subarray(0, bytesRead);
    this.windowAt = position;
    return this.window.subarray(0, length);
  }
}

const WINDOW_BYTES = 64 * 1024;

/**
 * Numbers and tags at positions of a blob, for walks over millions of small headers (frames, pages, boxes): each
 * comes from the window at hand, without a view or a promise per field; `has` loads a window when one is needed.
 */
export class FieldReader {
  private bytes: Buffer = Buffer.alloc(0);
  private start = 0;

  constructor(private readonly file: WindowedFile) {}

  /** The `length` bytes at `position` are at hand: no window to load. */
  holds(position: number, length: number): boolean {
    const from = position - this.start;
    return from >= 0 && from + length <= this.bytes.length;
  }

  /** Loads the window from `position`: false when the file has fewer than `length` bytes there. */
  async load(position: number, length: number): Promise<boolean> {
    // A position taken from the file may be anything; past 2^53 it is past the end of any file.
    if (position < 0 || !Number.isSafeInteger(position + length)) return false;
    this.bytes = await this.file.bytesAt(position, Math.max(length, WINDOW_BYTES));
    this.start = position;
    return this.bytes.length >= length;
  }

  /** The `length` bytes at `position` are in the file, and at hand after this. */
  async has(position: number, length: number): Promise<boolean> {
    return this.holds(position, length) || this.load(position, length);
  }

  /** A window's bytes from `position` (at least `has` made sure of), for searching. */
  rest(position: number): Buffer {
    return this.bytes.subarray(position - this.start);
  }

  u8(position: number): number {
    return this.bytes[position - this.start]!;
  }

  u16(position: number, littleEndian = false): number {
    const at = position - this.start;
    return littleEndian ? this.bytes.readUInt16LE(at) : this.bytes.readUInt16BE(at);
  }

  u24le(position: number): number {
    return this.bytes.readUIntLE(position - this.start, 3);
  }

  u32(position: number, littleEndian = false): number {
    const at = position - this.start;
    return littleEndian ? this.bytes.readUInt32LE(at) : this.bytes.readUInt32BE(at);
  }

  /** A 64-bit size or offset, as a number: beyond 2^53 it is past the end of any file anyway. */
  u64(position: number, littleEndian = false): number {
    const at = position - this.start;
    return Number(littleEndian ? this.bytes.readBigUInt64LE(at) : this.bytes.readBigUInt64BE(at));
  }

  latin1(position: number, length: number): string {
    const at = position - this.start;
    return this.bytes.toString('latin1', at, at + length);
  }
}

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
 * `import.meta.url`) in a parser process, or inline for small files, and stores the renderings it may return.
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
      const inline = file.size <= (options.inlineMaxBytes ?? -1);
      // Read (and checked) here only when it is analysed inline, or when no scan of this job checked it already.
      const { common, bytes } =
        input.verified && !inline
          ? { common: verifiedCommon(file.size), bytes: undefined }
          : await readVerified(file, storage, inline);
      // The analysis reads what it needs where the bytes lie; for a bucket, a URL valid until the parser must be done.
      const source = await storage.source(file.id, input.deadline - Date.now() + SOURCE_CLOCK_SKEW_MS);
      const analysisInput: AnalysisInput = {
        source,
        contentType: file.content_type,
        size: file.size,
        limits,
        ...(input.tools ? { tools: input.tools } : {}),
      };
      const analyzed = bytes
        ? await analysis({ ...analysisInput, bytes })
        : await input.inParser(module, analysis, analysisInput);
      for (const variant of BLOB_VARIANTS) {
        const rendering = analyzed[variant];
        if (rendering)
          await storage.put(file.id, Readable.from([Buffer.from(rendering)]), {
            maxBytes: RENDERING_MAX_BYTES,
            variant,
          });
      }
      return {
        result: { ...common, ...analyzed.fields, warnings: [...common.warnings, ...analyzed.warnings] },
        thumbnail: Boolean(analyzed.thumbnail),
        preview: Boolean(analyzed.preview),
      };
    },
  };
}
