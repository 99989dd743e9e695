// A webhook event, typed in one place. The `files` trigger stores the row as it was (`to_jsonb`: timestamps as
// strings, bigint as a number) so that every path that settles or deletes a File gets its event; here that stored row
// is checked against the shape of a `files` row and becomes the payload every receiver gets, with no cast between.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { FILE_KINDS, FILE_STATUSES, ScanSchema, type FileRow } from '../fileRecord.js';
import { StringEnum } from '../results/common.js';
import { serializeFile } from '../serializer.js';
import type { WebhookEvent } from '../db/webhooks.js';

const OrNull = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()]);

/** A `files` row as `to_jsonb` writes it; columns the File does not show (updated_at, ...) may be there too. */
const StoredFileRowSchema = Type.Object({
  id: Type.String(),
  name: Type.String(),
  size: Type.Integer({ minimum: 0 }),
  content_type: Type.String(),
  kind: StringEnum(FILE_KINDS),
  sha256: Type.String(),
  status: StringEnum(FILE_STATUSES),
  attempts: Type.Integer(),
  result: OrNull(Type.Record(Type.String(), Type.Unknown())),
  error: OrNull(Type.Object({ code: Type.String(), message: Type.String() })),
  uploaded_at: Type.String(),
  processed_at: OrNull(Type.String()),
  has_thumbnail: Type.Boolean(),
  /** Absent from the rows of events stored before previews existed. */
  has_preview: Type.Optional(Type.Boolean()),
  /** Absent from the rows of events stored before scanning existed. */
  scan: Type.Optional(OrNull(ScanSchema)),
  /** The trace context of the span that settled the File, when tracing was on. */
  trace_parent: Type.Optional(OrNull(Type.String())),
});
type StoredFileRow = Static<typeof StoredFileRowSchema>;

/** An event as a dispatcher sends it: what happened, when, and the File's row at that moment as stored. */
export interface StoredEvent {
  type: WebhookEvent;
  createdAt: Date;
  file: unknown;
}

/** The stored row, checked; an Error naming what is off when it is not a `files` row (a bug, never a client's). */
export function storedFileRow(stored: unknown): StoredFileRow {
  if (Value.Check(StoredFileRowSchema, stored)) return stored;
  const first = Value.Errors(StoredFileRowSchema, stored).First();
  throw new Error(`A webhook event holds no files row: ${first ? `${first.path} ${first.message}` : 'not an object'}.`);
}

/** The body of the event's POST: `{"type", "timestamp", "data": File}`, the File as `GET` answered it then. */
export function eventBody(event: StoredEvent, baseUrl: string): string {
  const { trace_parent: _, ...row } = storedFileRow(event.file);
  const fileRow: FileRow = {
    ...row,
    uploaded_at: new Date(row.uploaded_at),
    processed_at: row.processed_at === null ? null : new Date(row.processed_at),
    scan: row.scan ?? null,
    has_preview: row.has_preview ?? false,
  };
  return JSON.stringify({
    type: event.type,
    timestamp: event.createdAt.toISOString(),
    data: serializeFile(fileRow, baseUrl),
  });
}

/** The trace context the File was settled in, for the delivery's span to link to. */
export const traceParentOf = (event: StoredEvent): string | null => storedFileRow(event.file).trace_parent ?? null;
