// GET /files/{id}/thumbnail: the WebP preview a processor stored beside the bytes (images only).
import type Koa from 'koa';
import type { Readable } from 'node:stream';
import type { FileRow } from '../core/fileRecord.js';
import type { BlobStore } from '../core/storage/index.js';
import { AppError } from './errors.js';

export async function sendThumbnail(ctx: Koa.Context, row: FileRow, storage: BlobStore): Promise<void> {
  if (!row.has_thumbnail)
    throw new AppError(
      'not_found',
      'This file has no thumbnail; processed images have one, unless a warning says it was too costly to decode.',
    );
  ctx.set('Cache-Control', 'private, no-cache');
  ctx.set('Content-Security-Policy', 'sandbox');
  ctx.type = 'image/webp';
  let bytes: Readable;
  try {
    bytes = await storage.open(row.id, { variant: 'thumbnail' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AppError(
        'not_found',
        'The thumbnail of this file is missing from storage; reprocess the file to make it again.',
        { cause: err },
      );
    }
    throw err;
  }
  // HEAD answers as GET would, with the headers only: the blob is opened to know it is there, and closed unread.
  if (ctx.method === 'HEAD') {
    bytes.destroy();
    ctx.status = 200;
  } else {
    ctx.body = bytes;
  }
}
