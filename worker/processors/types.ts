import type { TSchema } from '@sinclair/typebox';
import type { FileResult, FileRow } from '../../core/fileRecord.js';
import type { BlobStore } from '../../core/storage/index.js';

export interface ProcessorInput {
  file: FileRow;
  storage: BlobStore;
}

/** Turns a stored file into its `result`; throws ProcessingError for input that will never process. */
export interface Processor {
  /** JSON schema of the result, shown per kind in the OpenAPI document. */
  resultSchema: TSchema;
  process(input: ProcessorInput): Promise<FileResult>;
}

/** A permanent failure (corrupt or unreadable input): the file becomes `failed` without retries. */
export class ProcessingError extends Error {
  override name = 'ProcessingError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
