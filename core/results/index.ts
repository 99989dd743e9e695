// The registry of file kinds, which both processes reach: the API sniffs and documents them, the worker
// produces their results (api/ and worker/ never import each other).
import type { TObject } from '@sinclair/typebox';
import { ARCHIVE_FORMATS, ArchiveResultSchema } from './archive.js';
import { kindResult } from './common.js';
import { DocumentResultSchema, isDocument } from './document.js';
import { ImageResultSchema } from './image.js';
import { AudioResultSchema, isAudio, isVideo, VideoResultSchema } from './media.js';
import { PdfResultSchema } from './pdf.js';
import { TextResultSchema } from './text.js';

export { CommonResultSchema, type CommonResult } from './common.js';

const OtherResultSchema = kindResult(
  'OtherResult',
  'The result of a file of kind `other`: the common fields only.',
  {},
);

interface KindDefinition {
  /** What processing finds: the worker produces it, the API documents it. */
  result: TObject & { title: string };
  /** True for the content types (as file-type names them) that are files of this kind. */
  claims: (mime: string) => boolean;
}

/**
 * Every file kind, once. A new kind is its module in this directory (result schema, content types) and one
 * line here; worker/processors/index.ts then asks for its processor (a Record over the kinds). Text is told
 * from the bytes before file-type is asked (see core/kinds.ts), and `other` takes what no kind claims.
 */
export const KINDS = {
  image: { result: ImageResultSchema, claims: (mime) => mime.startsWith('image/') },
  text: { result: TextResultSchema, claims: () => false },
  pdf: { result: PdfResultSchema, claims: (mime) => mime === 'application/pdf' },
  document: { result: DocumentResultSchema, claims: isDocument },
  archive: { result: ArchiveResultSchema, claims: (mime) => Object.hasOwn(ARCHIVE_FORMATS, mime) },
  audio: { result: AudioResultSchema, claims: isAudio },
  video: { result: VideoResultSchema, claims: isVideo },
  other: { result: OtherResultSchema, claims: () => false },
} as const satisfies Record<string, KindDefinition>;

export type FileKind = keyof typeof KINDS;
export const FILE_KINDS = Object.keys(KINDS) as [FileKind, ...FileKind[]];

/** Each kind's result schema, in the registry's order. */
export const resultSchemas = () => FILE_KINDS.map((kind) => [kind, KINDS[kind].result] as const);
