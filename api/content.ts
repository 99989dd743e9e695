// GET /files/{id}/content: the original bytes, streamed, as a download that a browser will not render
// or sniff; strong ETag (the sha256), conditional GET and single byte ranges.
import type Koa from 'koa';
import { create as contentDisposition } from 'content-disposition';
import type { Readable } from 'node:stream';
import type { FileRow } from '../core/fileRecord.js';
import type { BlobStore, ByteRange } from '../core/storage/index.js';
import { AppError } from './errors.js';

export async function sendContent(
  ctx: Koa.Context,
  row: FileRow,
  storage: BlobStore,
  redirect: boolean,
): Promise<void> {
  const etag = `"${row.sha256}"`;
  ctx.set('ETag', etag);
  ctx.set('Accept-Ranges', 'bytes');
  ctx.set('Cache-Control', 'private, no-cache');
  // An ASCII fallback for old clients; the exact UTF-8 name travels in filename* (RFC 6266).
  const fallback = row.name.replace(/[^\x20-\x7e]/g, '_');
  ctx.set('Content-Disposition', contentDisposition(row.name, { type: 'attachment', fallback }));
  ctx.set('Content-Security-Policy', 'sandbox');
  ctx.set('X-Content-Type-Options', 'nosniff');

  if (matchesEtag(ctx.get('If-None-Match'), etag)) {
    ctx.status = 304;
    return;
  }
  if (redirect && storage.downloadUrl) {
    // The store answers ranges itself; the signed URL makes it send the same disposition and type.
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 302;
    ctx.redirect(
      await storage.downloadUrl(row.id, {
        contentDisposition: ctx.response.get('Content-Disposition'),
        contentType: row.content_type,
      }),
    );
    return;
  }

  const ifRange = ctx.get('If-Range');
  const range = ifRange && ifRange !== etag ? null : parseRange(ctx.get('Range'), row.size);
  if (range === 'unsatisfiable') {
    throw new AppError('range_not_satisfiable', `The file has ${row.size} bytes; ask for a range within them.`, {
      headers: { 'Content-Range': `bytes */${row.size}` },
    });
  }

  ctx.type = row.content_type;
  if (range) {
    ctx.status = 206;
    ctx.set('Content-Range', `bytes ${range.start}-${range.end}/${row.size}`);
  } else {
    ctx.status = 200;
  }
  let bytes: Readable;
  try {
    bytes = await storage.open(row.id, range ? { range } : {});
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AppError('not_found', "The file's bytes are missing from storage.", { cause: err });
    }
    throw err;
  }
  // HEAD answers as GET would, with the headers only: the blob is opened to know it is there, and closed unread.
  if (ctx.method === 'HEAD') bytes.destroy();
  else ctx.body = bytes;
  ctx.length = range ? range.end - range.start + 1 : row.size;
}

/** RFC 9110 weak comparison against a list of entity tags, or `*`. */
function matchesEtag(header: string, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  return header.split(',').some((tag) => tag.trim().replace(/^W\//, '') === etag);
}

/**
 * One byte range of `size` bytes from a Range header. Null means "send the whole file": no header,
 * another unit, several ranges or a malformed header may all be ignored (RFC 9110 §14.2).
 */
function parseRange(header: string, size: number): ByteRange | 'unsatisfiable' | null {
  const match = /^bytes=[ \t]*(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return null;
  const [, first, last] = match as unknown as [string, string, string];
  if (first === '') {
    const suffix = Number(last);
    if (suffix === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(first);
  const end = last === '' ? size - 1 : Math.min(Number(last), size - 1);
  if (start >= size) return 'unsatisfiable';
  if (end < start) return null;
  return { start, end };
}
