import { Type, type Static } from '@sinclair/typebox';
import { kindResult, OrNull, StringEnum } from './common.js';

const DOCUMENT_FORMATS = [
  'docx',
  'xlsx',
  'pptx',
  'docm',
  'xlsm',
  'pptm',
  'odt',
  'ods',
  'odp',
  'doc',
  'xls',
  'ppt',
  'rtf',
] as const;
export type DocumentFormat = (typeof DOCUMENT_FORMATS)[number];

/**
 * Office documents as file-type names them (it lowercases the macro-enabled ones), and the legacy ones as sniffing
 * names a compound file whose head shows the program (core/ole2Head.ts), each with its format.
 */
export const DOCUMENT_CONTENT_TYPES: Readonly<Record<string, DocumentFormat>> = {
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document': 'docx',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet': 'xlsx',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation': 'pptx',
  'application/vnd.ms-word.document.macroenabled.12': 'docm',
  'application/vnd.ms-excel.sheet.macroenabled.12': 'xlsm',
  'application/vnd.ms-powerpoint.presentation.macroenabled.12': 'pptm',
  'application/vnd.oasis.opendocument.text': 'odt',
  'application/vnd.oasis.opendocument.spreadsheet': 'ods',
  'application/vnd.oasis.opendocument.presentation': 'odp',
  'application/msword': 'doc',
  'application/vnd.ms-excel': 'xls',
  'application/vnd.ms-powerpoint': 'ppt',
  'application/rtf': 'rtf',
};

export const isDocument = (mime: string): boolean => Object.hasOwn(DOCUMENT_CONTENT_TYPES, mime);

const count = (description: string) => OrNull(Type.Integer({ minimum: 0, description }));

export const DocumentResultSchema = kindResult(
  'DocumentResult',
  'The result of a file of kind `document`: its metadata, read from the small parts that hold it (OOXML ' +
    '`docProps`, ODF `meta.xml`, OLE2 `SummaryInformation`, RTF `\\info`), never by opening the document in an ' +
    'office suite. Counts are what the program that saved it recorded; null where the format does not say.',
  {
    format: StringEnum(DOCUMENT_FORMATS, {
      description: 'The document format, from the bytes (not the name): `docx`, `odt`, `doc`, `rtf`, ...',
    }),
    title: OrNull(Type.String({ description: 'The title in the document properties; null when it has none.' })),
    author: OrNull(Type.String({ description: 'The author (creator) in the document properties.' })),
    pages: count('Pages, for text documents (docx, docm, odt, doc, rtf).'),
    sheets: count('Sheets, for spreadsheets (xlsx, xlsm, ods).'),
    slides: count('Slides, for presentations (pptx, pptm, odp, ppt).'),
    words: count('Words, for text documents and presentations.'),
    macros: Type.Boolean({
      description: 'The document carries macros (VBA or Basic). They are never run: only the metadata is read.',
    }),
  },
);
export type DocumentResult = Static<typeof DocumentResultSchema>;
