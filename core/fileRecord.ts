// The File resource, defined once: the JSON schema (used by the OpenAPI document), the serialized type
// (used by the serializer) and the stored row type (used by the repository) all come from here.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { FILE_KINDS } from './results/index.js';
import { StringEnum } from './results/common.js';

export { FILE_KINDS, type FileKind } from './results/index.js';

export const FILE_STATUSES = ['queued', 'processing', 'processed', 'failed'] as const;
export type FileStatus = (typeof FILE_STATUSES)[number];

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

const Timestamp = (description: string) =>
  Type.String({ format: 'date-time', description, examples: ['2026-11-26T18:07:14.123Z'] });

const FileErrorSchema = Type.Object(
  {
    code: Type.String({
      description:
        'Stable, machine-readable reason: `corrupt_file`, `unsupported_format`, `image_too_large`, `too_complex`, `timeout`, ' +
        '`parser_crashed`, `out_of_memory`, `render_failed` (a tool could not draw the thumbnail and preview of a damaged ' +
        'file), `checksum_mismatch`, `blob_missing`, `malware_detected`, `unscannable` ' +
        "(past the scanner's limits), `result_unstorable` (the database refused " +
        'what processing found) (permanent); `processing_failed` (transient errors outlasted the retries) or ' +
        '`too_many_attempts` (processing started `MAX_ATTEMPTS` times without finishing).',
    }),
    message: Type.String({ maxLength: 1024, description: 'What went wrong, for a person (at most 1 KiB).' }),
  },
  { additionalProperties: false },
);
export type FileError = Static<typeof FileErrorSchema>;

export const SCAN_STATUSES = ['clean', 'infected', 'unscannable'] as const;
export type ScanStatus = (typeof SCAN_STATUSES)[number];

export const ScanSchema = Type.Object(
  {
    status: StringEnum(SCAN_STATUSES, {
      description:
        '`clean`: nothing found; `infected`: the File failed with `malware_detected` and its bytes are never served; ' +
        "`unscannable`: past the scanner's limits, so not known to be clean (failed, or served with SCAN_UNSCANNABLE=allow).",
    }),
    signature: Nullable(Type.String({ description: 'What was found (`infected`), or why it could not be scanned.' })),
    engine: Type.String({ description: "The engine and its signatures' version: `ClamAV 1.4.6/27452/...`." }),
    scanned_at: Timestamp('When the verdict was given.'),
  },
  { additionalProperties: false },
);
export type Scan = Static<typeof ScanSchema>;

const FileResultSchema = Type.Record(Type.String(), Type.Unknown(), {
  description: 'What processing found; its shape depends on `kind` (see the processor result schemas).',
});
export type FileResult = Static<typeof FileResultSchema>;

export const FileSchema = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'Time-ordered UUIDv7; also the queue job id.' }),
    file: Type.String({ format: 'uri', description: 'Absolute URL of the original bytes.' }),
    name: Type.String({ maxLength: 255, description: "The client's filename reduced to a safe base name." }),
    size: Type.Integer({ minimum: 1, description: 'Bytes stored.' }),
    content_type: Type.String({
      description:
        "MIME type detected from the bytes, never taken from the client; the name's extension only breaks a tie between text formats the content leaves open.",
    }),
    kind: StringEnum(FILE_KINDS, { description: 'File kind, decided at upload from the bytes.' }),
    sha256: Type.String({
      pattern: '^[0-9a-f]{64}$',
      description: 'Hex SHA-256 of the bytes, computed while streaming.',
    }),
    uploaded_at: Timestamp('When the upload was committed.'),
    status: StringEnum(FILE_STATUSES, { description: '`queued` → `processing` → `processed` or `failed`.' }),
    processed: Type.Boolean({ description: 'True exactly when `status` is `processed`.' }),
    processed_at: Nullable(Timestamp('When processing last finished successfully.')),
    attempts: Type.Integer({ minimum: 0, description: 'How many times processing started.' }),
    result: Nullable(FileResultSchema),
    error: Nullable(FileErrorSchema),
    thumbnail: Nullable(
      Type.String({ format: 'uri', description: 'Absolute URL of a derived WebP rendering, at most 256 px.' }),
    ),
    preview: Nullable(
      Type.String({ format: 'uri', description: 'Absolute URL of a derived WebP rendering, at most 1024 px.' }),
    ),
    scan: Nullable({
      ...ScanSchema,
      description:
        "The malware scanner's verdict on the bytes (SCAN_CLAMD); null while not scanned yet, and always with scanning off. " +
        'With scanning on, the bytes are served only once `clean` (or `unscannable` with SCAN_UNSCANNABLE=allow).',
    }),
  },
  { additionalProperties: false, $id: 'File' },
);

/** A File as clients see it. */
export type File = Static<typeof FileSchema>;

/** A File as the database stores it: URLs and `processed` are derived when serializing. */
export type FileRow = Omit<File, 'file' | 'processed' | 'thumbnail' | 'preview' | 'uploaded_at' | 'processed_at'> & {
  uploaded_at: Date;
  processed_at: Date | null;
  /** A thumbnail variant was stored with the last result. */
  has_thumbnail: boolean;
  /** A preview variant was stored with the last result. */
  has_preview: boolean;
};

/** What the API knows about a file before its row exists. */
export type NewFile = Pick<FileRow, 'id' | 'name' | 'size' | 'content_type' | 'kind' | 'sha256'>;
