// The processor registry: one processor per file kind. A new kind is one module and one line here.
import type { FileKind } from '../../core/fileRecord.js';
import { genericProcessor } from './generic.js';
import type { Processor } from './types.js';

export { ProcessingError, type Processor, type ProcessorInput } from './types.js';

export type ProcessorRegistry = Record<FileKind, Processor>;

export const PROCESSORS: ProcessorRegistry = {
  image: genericProcessor,
  text: genericProcessor,
  pdf: genericProcessor,
  archive: genericProcessor,
  audio: genericProcessor,
  video: genericProcessor,
  other: genericProcessor,
};
