import { Type, type Static } from '@sinclair/typebox';
import { kindResult, OrNull } from './common.js';

export const PdfResultSchema = kindResult('PdfResult', 'The result of a file of kind `pdf`.', {
  pdf_version: OrNull(Type.String({ description: 'Version from the header, e.g. `1.7`.' })),
  pages: OrNull(
    Type.Integer({ minimum: 0, description: 'Page count; null when a password keeps the document closed.' }),
  ),
  title: OrNull(Type.String()),
  author: OrNull(Type.String()),
  producer: OrNull(Type.String({ description: 'The program that wrote the PDF.' })),
  encrypted: Type.Boolean({ description: 'The document is encrypted (with or without a password to open it).' }),
  text: OrNull(
    Type.String({
      description:
        'The first kilobyte (at most 1024 UTF-8 bytes) of the text of the first pages; null when unreadable.',
    }),
  ),
});
export type PdfResult = Static<typeof PdfResultSchema>;
