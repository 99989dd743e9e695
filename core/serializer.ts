// The File as clients see it, from its row: for the API's answers and for the worker's webhook payloads alike, so
// a webhook's `data` is exactly what `GET /files/{id}/` answers. The worker has no router: the two URL templates
// are written here, and test/openapi.test.ts checks them against the contract's paths.
import type { File, FileRow } from './fileRecord.js';

export const CONTENT_PATH = '/files/{id}/content';
export const THUMBNAIL_PATH = '/files/{id}/thumbnail';
export const PREVIEW_PATH = '/files/{id}/preview';

const urlOf = (base: string, template: string, id: string) => base + template.replace('{id}', encodeURIComponent(id));

/** The File as clients see it; `base` is the absolute origin (and path prefix) of the API. */
export function serializeFile(row: FileRow, base: string): File {
  return {
    id: row.id,
    file: urlOf(base, CONTENT_PATH, row.id),
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
    thumbnail: row.has_thumbnail ? urlOf(base, THUMBNAIL_PATH, row.id) : null,
    preview: row.has_preview ? urlOf(base, PREVIEW_PATH, row.id) : null,
    scan: row.scan,
  };
}
