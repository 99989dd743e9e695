// GET /files/{id}/thumbnail and /preview: the WebP renderings a processor stored beside the bytes.
import type Koa from 'koa';
import type { Readable } from 'node:stream';
import type { FileRow } from '../core/fileRecord.js';
import type { BlobStore, BlobVariant } from '../core/storage/index.js';
import { AppError } from './errors.js';

const STORED: Record<BlobVariant, (row: FileRow) => boolean> = {
  thumbnail: (row) => row.has_thumbnail,
  preview: (row) => row.has_preview,
};

export async function sendRendering(
  ctx: Koa.Context,
  row: FileRow,
  storage: BlobStore,
  variant: BlobVariant,
): Promise<void> {
  if (!STORED[variant](row))
    throw new AppError(
      'not_found',
      `This file has no ${variant}; processed images, PDFs, videos and audio have one, unless a warning says why not.`,
    );
  ctx.set('Cache-Control', 'private, no-cache');
  ctx.set('Content-Security-Policy', 'sandbox');
  ctx.type = 'image/webp';
  let bytes: Readable;
  try {
    bytes = await storage.open(row.id, { variant });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AppError(
        'not_found',
        `The ${variant} of this file is missing from storage; reprocess the file to make it again.`,
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
