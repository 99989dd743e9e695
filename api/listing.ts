// The filters of the File list: GET /files/'s query parameters, POST /files/reprocess's body, and the opaque
// keyset cursor.
import { Type, type Static } from '@sinclair/typebox';
import type { Cursor, ListFilter, ListQuery } from '../core/db/index.js';
import { FILE_KINDS, FILE_STATUSES, type FileKind, type FileStatus } from '../core/fileRecord.js';
import { parseId } from '../core/ids.js';
import { StringEnum } from '../core/results/common.js';
import { AppError, type FieldError } from './errors.js';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;
/**
 * A list page stops early past this many bytes of records (results, errors, names), so that no page of any `limit`
 * costs the API more than a few tens of MiB however large the records are.
 */
export const LIST_PAGE_MAX_BYTES = 4 * 1024 * 1024;
/** Error codes are short identifiers (`processing_failed`); a longer one matches nothing. */
export const MAX_ERROR_CODE_LENGTH = 200;

type Query = Record<string, string | string[] | undefined>;

/** Validates every parameter and reports all problems at once, per field. */
export function parseListQuery(query: Query): ListQuery {
  const errors: FieldError[] = [];
  const single = (field: string): string | undefined => {
    const value = query[field];
    if (Array.isArray(value)) {
      errors.push({ field, message: 'Give this parameter once.' });
      return undefined;
    }
    return value;
  };

  const parsed: ListQuery = { limit: DEFAULT_LIMIT };
  const limit = single('limit');
  if (limit !== undefined) {
    const value = Number(limit);
    if (!/^\d+$/.test(limit) || value < 1 || value > MAX_LIMIT) {
      errors.push({ field: 'limit', message: `Must be a whole number from 1 to ${MAX_LIMIT}.` });
    } else parsed.limit = value;
  }
  const status = single('status');
  if (status !== undefined) {
    if ((FILE_STATUSES as readonly string[]).includes(status)) parsed.status = status as FileStatus;
    else errors.push({ field: 'status', message: `Must be one of ${FILE_STATUSES.join(', ')}.` });
  }
  const kind = single('kind');
  if (kind !== undefined) {
    if (isKind(kind)) parsed.kind = kind;
    else errors.push({ field: 'kind', message: KIND_FORM });
  }
  const errorCode = single('error_code');
  if (errorCode !== undefined) {
    const message = errorCodeProblem(errorCode);
    if (message) errors.push({ field: 'error_code', message });
    else parsed.errorCode = errorCode;
  }
  const uploadedBefore = single('uploaded_before');
  if (uploadedBefore !== undefined) {
    const at = parseTimestamp(uploadedBefore);
    if (at) parsed.uploadedBefore = at;
    else errors.push({ field: 'uploaded_before', message: TIMESTAMP_FORM });
  }
  const processed = single('processed');
  if (processed !== undefined) {
    if (processed === 'true' || processed === 'false') parsed.processed = processed === 'true';
    else errors.push({ field: 'processed', message: 'Must be true or false.' });
  }
  const cursor = single('cursor');
  if (cursor !== undefined) {
    const after = decodeCursor(cursor);
    if (after) parsed.after = after;
    else
      errors.push({
        field: 'cursor',
        message: 'Not a cursor this API issued; use the `next` link of a previous page.',
      });
  }
  if (errors.length)
    throw new AppError('invalid_query', 'Some query parameters are invalid; see `errors`.', { errors });
  return parsed;
}

/** A keyset position: the last row's (time, id). The files list and the webhook deliveries both page by one. */
export interface Position {
  at: Date;
  id: string;
}

/** The position as an opaque cursor. */
export function encodePosition(position: Position): string {
  return Buffer.from(`${position.at.toISOString()}_${position.id}`).toString('base64url');
}

/** The position a cursor of encodePosition holds; null for anything else. */
export function decodePosition(raw: string): Position | null {
  if (!/^[A-Za-z0-9_-]{1,200}$/.test(raw)) return null;
  const [time, rawId, ...rest] = Buffer.from(raw, 'base64url').toString('utf8').split('_');
  const id = parseId(rawId ?? '');
  if (rest.length || !time || !id) return null;
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(time)) return null;
  const at = new Date(time);
  return Number.isNaN(at.getTime()) ? null : { at, id };
}

/** The files list's cursor (and the bulk reprocess's) is the last row's (uploaded_at, id), opaque to clients. */
export const encodeCursor = (cursor: Cursor): string => encodePosition({ at: cursor.uploadedAt, id: cursor.id });

function decodeCursor(raw: string): Cursor | null {
  const position = decodePosition(raw);
  return position && { uploadedAt: position.at, id: position.id };
}

/** The absolute URL of the page after this one, keeping the client's filters and limit. */
export function nextPageUrl(listUrl: string, query: ListQuery, last: Cursor): string {
  const params = new URLSearchParams();
  params.set('limit', String(query.limit));
  if (query.status) params.set('status', query.status);
  if (query.kind) params.set('kind', query.kind);
  if (query.processed !== undefined) params.set('processed', String(query.processed));
  if (query.errorCode !== undefined) params.set('error_code', query.errorCode);
  if (query.uploadedBefore) params.set('uploaded_before', query.uploadedBefore.toISOString());
  params.set('cursor', encodeCursor(last));
  return `${listUrl}?${params.toString()}`;
}

const isKind = (value: unknown): value is FileKind => (FILE_KINDS as readonly unknown[]).includes(value);
const KIND_FORM = `Must be one of ${FILE_KINDS.join(', ')}.`;

const TIMESTAMP_FORM = 'Must be an RFC 3339 timestamp, such as 2026-11-26T18:07:14.123Z.';
const RFC_3339 = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$/i;

/**
 * An RFC 3339 timestamp as the first millisecond not before it (`uploaded_at` is stored to the millisecond, so
 * `uploaded_at < it` means the same); null for anything else, an impossible date included.
 */
export function parseTimestamp(raw: string): Date | null {
  const match = RFC_3339.exec(raw);
  if (!match) return null;
  const [, year, month, day, hour, minute, second, fraction = '', zone = ''] = match;
  const daysInMonth = new Date(Date.UTC(Number(year), Number(month), 0)).getUTCDate();
  if (Number(month) < 1 || Number(day) < 1 || Number(day) > daysInMonth) return null;
  if (Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) return null;
  const millis = fraction.slice(1, 4).padEnd(3, '0');
  const at = Date.parse(`${year}-${month}-${day}T${hour}:${minute}:${second}.${millis}${zone.toUpperCase()}`);
  if (Number.isNaN(at)) return null;
  return new Date(/[1-9]/.test(fraction.slice(4)) ? at + 1 : at);
}

/** Why an `error_code` filter is not one, or null when it is. */
const errorCodeProblem = (value: unknown): string | null =>
  typeof value === 'string' && value.length > 0 && value.length <= MAX_ERROR_CODE_LENGTH
    ? null
    : `Must be the \`code\` of a failure (such as processing_failed): 1 to ${MAX_ERROR_CODE_LENGTH} characters.`;

/** The statuses a bulk reprocess takes: settled files. Queued and processing ones are in the queue already. */
export const REPROCESS_STATUSES = ['failed', 'processed'] as const;
export const DEFAULT_REPROCESS_LIMIT = 1000;
export const MAX_REPROCESS_LIMIT = 10_000;

export const ReprocessFilesRequestSchema = Type.Object(
  {
    status: Type.Optional(
      StringEnum(REPROCESS_STATUSES, {
        description: 'The files to take: `failed` (the default) or `processed`. Queued and processing files never are.',
      }),
    ),
    kind: Type.Optional(StringEnum(FILE_KINDS)),
    error_code: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: MAX_ERROR_CODE_LENGTH,
        description: 'Only files whose last failure had this `error.code`, such as `processing_failed`.',
      }),
    ),
    uploaded_before: Type.Optional(
      Type.String({
        format: 'date-time',
        errorMessage: TIMESTAMP_FORM,
        description: 'Only files uploaded strictly before this instant (RFC 3339). Give it to fix where the set ends.',
      }),
    ),
    dry_run: Type.Optional(
      Type.Boolean({ default: false, description: 'Count the files this call would take, and change nothing.' }),
    ),
    limit: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_REPROCESS_LIMIT,
        default: DEFAULT_REPROCESS_LIMIT,
        description: 'The most files this call takes.',
      }),
    ),
    cursor: Type.Optional(
      Type.Union([Type.String({ format: 'cursor' }), Type.Null()], {
        description: "Where to go on from: a previous answer's `next_cursor`, with the same filters (null: the start).",
        errorMessage: "Not a cursor this API issued; use a previous answer's `next_cursor`.",
      }),
    ),
  },
  { $id: 'ReprocessFilesRequest', additionalProperties: false },
);

export const ReprocessFilesResultSchema = Type.Object(
  {
    matched: Type.Integer({
      minimum: 0,
      description: 'The matching files this call took (with `dry_run`, would take): `limit` at most.',
    }),
    requeued: Type.Integer({
      minimum: 0,
      description: 'The files put back in the queue (`queued`): `matched`, or 0 with `dry_run`.',
    }),
    dry_run: Type.Boolean(),
    next_cursor: Type.Union([Type.String(), Type.Null()], {
      description:
        'Null when no more files match. Else more do, beyond `limit`: send the same body with this `cursor` to go on ' +
        'from the last file taken (or counted).',
    }),
  },
  { $id: 'ReprocessFilesResult' },
);
export type ReprocessFilesResult = Static<typeof ReprocessFilesResultSchema>;

/** A bulk reprocess, as its body asks for it. */
export interface ReprocessRequest {
  filter: ListFilter & { status: (typeof REPROCESS_STATUSES)[number] };
  limit: number;
  dryRun: boolean;
  after?: Cursor;
}

/**
 * POST /files/reprocess's body, validated by its schema (unknown fields are refused rather than ignored, so that a
 * misspelt `dry_run` never re-queues for real), as the request it asks for.
 */
export function reprocessRequestOf(body: Static<typeof ReprocessFilesRequestSchema>): ReprocessRequest {
  const request: ReprocessRequest = {
    filter: { status: body.status ?? 'failed' },
    limit: body.limit ?? DEFAULT_REPROCESS_LIMIT,
    dryRun: body.dry_run ?? false,
  };
  if (body.kind) request.filter.kind = body.kind;
  if (body.error_code !== undefined) request.filter.errorCode = body.error_code;
  if (body.uploaded_before !== undefined) request.filter.uploadedBefore = parseTimestamp(body.uploaded_before)!;
  // null is the start: a client may send the `next_cursor` it has, from the first call on.
  if (body.cursor) request.after = decodeCursor(body.cursor)!;
  return request;
}
