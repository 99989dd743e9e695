// GET /files/ query parameters and the opaque keyset cursor.
import type { Cursor, ListQuery } from '../core/db/index.js';
import { FILE_KINDS, FILE_STATUSES, type FileKind, type FileStatus } from '../core/fileRecord.js';
import { parseFileId } from '../core/ids.js';
import { AppError, type FieldError } from './errors.js';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 1000;

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
    if ((FILE_KINDS as readonly string[]).includes(kind)) parsed.kind = kind as FileKind;
    else errors.push({ field: 'kind', message: `Must be one of ${FILE_KINDS.join(', ')}.` });
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
  const id = parseFileId(rawId ?? '');
  if (rest.length || !time || !id) return null;
  if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(time)) return null;
  const at = new Date(time);
  return Number.isNaN(at.getTime()) ? null : { at, id };
}

/** The files list's cursor is the last row's (uploaded_at, id), opaque to clients. */
const encodeCursor = (cursor: Cursor): string => encodePosition({ at: cursor.uploadedAt, id: cursor.id });

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
  params.set('cursor', encodeCursor(last));
  return `${listUrl}?${params.toString()}`;
}
