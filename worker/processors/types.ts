import type { FileResult, FileRow } from '../../core/fileRecord.js';
import type { BlobSource, BlobStore } from '../../core/storage/index.js';
import type { ToolLimits } from '../externalTool.js';

/** Limits that keep hostile files from costing more than a normal one. */
export interface ProcessingLimits {
  /** Largest image (width × height × pages) decoded; beyond it the file fails with `image_too_large`. */
  maxImagePixels: number;
  /** Bytes a PDF's streams may decode to (inflated content, fonts, object streams); past it the text is left out, with a warning. */
  pdfMaxDecodedBytes: number;
}

/** Runs `analysis`, an export of `module`, in a parser process within the job's time and memory budget. */
export type RunInParser = <A extends unknown[], R>(
  module: string,
  analysis: (...args: A) => Promise<R>,
  ...args: A
) => Promise<R>;

export interface ProcessorInput {
  file: FileRow;
  storage: BlobStore;
  limits: ProcessingLimits;
  inParser: RunInParser;
  /** When parsing must be done (epoch ms): the parser process is stopped then. */
  deadline: number;
  /** This job already read the whole stored file and matched it against its size and sha256 (the scan did). */
  verified?: boolean;
  /** What external tools (renderers) run under; without it, no rendering that needs one is made. */
  tools?: ToolLimits;
}

export interface ProcessorOutput {
  result: FileResult;
  /** A thumbnail variant was stored beside the bytes. */
  thumbnail: boolean;
  /** A preview variant was stored beside the bytes. */
  preview?: boolean;
}

/**
 * Turns a stored file into its `result` (the shape its kind's schema in core/results gives); throws
 * ProcessingError when the file can never be processed, anything else for a failure worth a retry.
 */
export interface Processor {
  /** The module whose analysis runs in a parser process: every one imports it as it starts. */
  module?: string;
  process(input: ProcessorInput): Promise<ProcessorOutput>;
}

/** What an analysis gets: where to read the bytes (plain data, copied to a parser process) and what the record says about them. */
export interface AnalysisInput {
  source: BlobSource;
  contentType: string;
  size: number;
  limits: ProcessingLimits;
  /** The whole file, when the processor already read it (small files analysed inline). */
  bytes?: Buffer;
  /** What external tools (renderers) run under; without it, no rendering that needs one is made. */
  tools?: ToolLimits;
}

/** What an analysis finds: the kind's own result fields, warnings, and maybe a thumbnail. */
export interface Analyzed<F> {
  fields: F;
  warnings: string[];
  /** A WebP of at most 256 px to store as the `thumbnail` variant. */
  thumbnail?: Uint8Array;
  /** A WebP of at most 1024 px to store as the `preview` variant. */
  preview?: Uint8Array;
}

/**
 * A permanent failure (corrupt or unreadable input): the file becomes `failed` without retries.
 * Codes: `corrupt_file`, `unsupported_format`, `image_too_large`, `too_complex` (more of something that costs
 * parsing work per item, such as a TIFF's directories, than a kind's cap), `timeout`, `parser_crashed`,
 * `out_of_memory`, `render_failed` (an external tool could not draw the file), `checksum_mismatch`, `blob_missing`.
 */
export class ProcessingError extends Error {
  override name = 'ProcessingError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
