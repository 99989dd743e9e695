import { Type, type Static } from '@sinclair/typebox';
import { BEFORE_IT_EXISTED, kindResult, OrNull, StringEnum } from './common.js';

const TEXT_ENCODINGS = ['utf-8', 'utf-16le', 'utf-16be', 'windows-1252'] as const;
export type TextEncoding = (typeof TEXT_ENCODINGS)[number];

const LINE_ENDINGS = ['lf', 'crlf', 'cr', 'mixed', 'none'] as const;
export type LineEndings = (typeof LINE_ENDINGS)[number];

/** Header names and top-level keys listed in a result; `columns` and `keys` count them all. */
export const LISTED_COLUMNS = 100;
export const LISTED_KEYS = 100;
/** One header name or key, in UTF-16 code units, as kept while scanning. */
export const KEPT_NAME_CHARS = 256;

const JSON_TYPES = ['object', 'array', 'string', 'number', 'boolean', 'null'] as const;

const CsvSummarySchema = Type.Object(
  {
    delimiter: Type.String({ description: 'The field delimiter guessed from the first lines: `,`, `;`, tab or `|`.' }),
    columns: Type.Integer({ minimum: 1, description: 'Fields in the first record.' }),
    header: Type.Boolean({ description: 'Whether the first record looks like a header (a guess).' }),
    rows: Type.Integer({ minimum: 0, description: 'Records, not counting the header; a quoted field may span lines.' }),
    column_names: Type.Optional(
      OrNull(
        Type.Array(Type.String(), {
          maxItems: LISTED_COLUMNS,
          description:
            `The header's names, in order: the first ${LISTED_COLUMNS}, each cut to ${KEPT_NAME_CHARS} characters; ` +
            'null when the first record does not look like a header. ' +
            BEFORE_IT_EXISTED,
        }),
      ),
    ),
  },
  { description: 'For CSV and TSV files.' },
);

const JsonSummarySchema = Type.Object(
  {
    valid: Type.Boolean({ description: 'The whole text is one valid JSON value (RFC 8259).' }),
    top_level: OrNull(StringEnum(JSON_TYPES, { description: 'Type of the top-level value; null when invalid.' })),
    keys: OrNull(Type.Integer({ minimum: 0, description: 'Keys of a top-level object.' })),
    key_names: Type.Optional(
      OrNull(
        Type.Array(Type.String(), {
          maxItems: LISTED_KEYS,
          description:
            `The first ${LISTED_KEYS} keys of a top-level object, in document order (a repeated key each time), each ` +
            `cut to ${KEPT_NAME_CHARS} characters; null when the top-level value is not an object or the text is not valid. ` +
            BEFORE_IT_EXISTED,
        }),
      ),
    ),
    items: OrNull(Type.Integer({ minimum: 0, description: 'Items of a top-level array.' })),
    error: OrNull(Type.String({ description: 'Where and why the text is not valid JSON.' })),
  },
  { description: 'For JSON files.' },
);

export const TextResultSchema = kindResult(
  'TextResult',
  'The result of a file of kind `text`. Counted while streaming: size does not matter.',
  {
    encoding: StringEnum(TEXT_ENCODINGS, {
      description:
        'How the bytes were decoded: UTF-8, UTF-16 (BOM or guessed), or `windows-1252` as the guess for legacy 8-bit text.',
    }),
    bom: Type.Boolean({ description: 'The text starts with a byte order mark.' }),
    lines: Type.Integer({ minimum: 0, description: 'Lines, counting a last line without a line break.' }),
    words: Type.Integer({ minimum: 0, description: 'Runs of non-whitespace characters.' }),
    characters: Type.Integer({ minimum: 0, description: 'Unicode code points (without the BOM).' }),
    line_endings: StringEnum(LINE_ENDINGS, {
      description: '`lf`, `crlf`, `cr`, `mixed`, or `none` for a single line.',
    }),
    csv: OrNull(CsvSummarySchema),
    json: OrNull(JsonSummarySchema),
  },
);
export type TextResult = Static<typeof TextResultSchema>;
export type CsvSummary = Static<typeof CsvSummarySchema>;
export type JsonSummary = Static<typeof JsonSummarySchema>;
