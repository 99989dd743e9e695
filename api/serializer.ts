import type { File, FileRow } from '../core/fileRecord.js';
import { routeUrl } from './routes.js';

/** The File as clients see it; `base` is the absolute origin (and path prefix) of the API. */
export function serializeFile(row: FileRow, base: string): File {
  const params = { id: row.id };
  return {
    id: row.id,
    file: routeUrl(base, 'getContent', params),
    name: row.name,
    size: row.size,
    content_type: row.content_type,
    kind: row.kind,
    sha256: row.sha256,
    uploaded_at: row.uploaded_at.toISOString(),
    status: row.status,
    processed: row.status === 'processed',
    processed_at: row.processed_at ? row.processed_at.toISOString() : null,
    attempts: row.attempts,
    result: row.result,
    error: row.error,
    thumbnail: row.has_thumbnail ? routeUrl(base, 'getThumbnail', params) : null,
  };
}

/** Where a file's record lives (the `Location` of a new upload). */
export const fileUrl = (id: string, base: string): string => routeUrl(base, 'getFile', { id });
