// The processor registry: one processor per file kind. A new kind is one module here and one line
// below (with its result schema in core/results, where the API documents it).
import type { FileKind } from '../../core/fileRecord.js';
import { archiveProcessor } from './archive.js';
import { audioProcessor } from './audio.js';
import { documentProcessor } from './document.js';
import { imageProcessor } from './image.js';
import { otherProcessor } from './other.js';
import { pdfProcessor } from './pdf.js';
import { textProcessor } from './text.js';
import type { Processor } from './types.js';
import { videoProcessor } from './video.js';

export {
  ProcessingError,
  type Processor,
  type ProcessorInput,
  type ProcessorOutput,
  type ProcessingLimits,
} from './types.js';

export type ProcessorRegistry = Record<FileKind, Processor>;

export const PROCESSORS: ProcessorRegistry = {
  image: imageProcessor,
  text: textProcessor,
  pdf: pdfProcessor,
  document: documentProcessor,
  archive: archiveProcessor,
  audio: audioProcessor,
  video: videoProcessor,
  other: otherProcessor,
};
