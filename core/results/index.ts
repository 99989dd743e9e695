// The result schema of every kind, in one registry both processes reach: the worker produces these
// results and the API documents them (api/ and worker/ never import each other).
import type { TObject } from '@sinclair/typebox';
import type { FileKind } from '../fileRecord.js';
import { ArchiveResultSchema } from './archive.js';
import { kindResult } from './common.js';
import { ImageResultSchema } from './image.js';
import { AudioResultSchema, VideoResultSchema } from './media.js';
import { PdfResultSchema } from './pdf.js';
import { TextResultSchema } from './text.js';

export { CommonResultSchema, type CommonResult } from './common.js';

export const OtherResultSchema = kindResult(
  'OtherResult',
  'The result of a file of kind `other`: the common fields only.',
  {},
);

/** One line per kind; the compiler asks for a new one when FILE_KINDS grows. */
export const RESULT_SCHEMAS: Record<FileKind, TObject & { title: string }> = {
  image: ImageResultSchema,
  text: TextResultSchema,
  pdf: PdfResultSchema,
  archive: ArchiveResultSchema,
  audio: AudioResultSchema,
  video: VideoResultSchema,
  other: OtherResultSchema,
};
