// Direct uploads (BLOB_STORE=s3): POST /uploads/ announces a file and answers a presigned PUT with its
// length signed in, which can only create the blob; the client sends the bytes straight to the bucket;
// POST /uploads/{id}/complete reads the object's size and head in one request, sniffs the kind and records the
// File in the statement that marks the upload completed, so an upload becomes one File at most. The bytes never
// pass through the API; the worker checks the announced sha256. The upload is remembered until its PUT is dead
// (core/db/uploads.ts), so a DELETE of the File can leave the key barred to a replay of it (api/files.ts).
import { Type, type Static } from '@sinclair/typebox';
import type Koa from 'koa';
import type { DirectUpload } from '../core/db/index.js';
import type { FileRow } from '../core/fileRecord.js';
import { newId, parseId } from '../core/ids.js';
import { HEAD_BYTES, type DirectUploadTarget } from '../core/storage/index.js';
import { AppError } from './errors.js';
import { safeFilename } from './filenames.js';
import { readBody } from './json.js';
import { pathParam, routeUrl } from './routes.js';
import { fileUrl, serializeFile } from './serializer.js';
import { claimIdempotencyKey } from './intake.js';
import type { WayInDeps } from './upload.js';

export interface DirectUploadDeps extends WayInDeps {
  expiresMs: number;
}

/** The announcement's JSON is small; anything longer is not one. */
const MAX_BODY_BYTES = 16 * 1024;

type Announcement = Static<typeof DirectUploadRequestSchema>;

export function directUploadHandlers(deps: DirectUploadDeps) {
  const { db, storage } = deps;

  const target = (): DirectUploadTarget => {
    if (storage.direct) return storage.direct;
    throw new AppError(
      'direct_uploads_unavailable',
      'Direct uploads need the S3 blob store (BLOB_STORE=s3); send the file to POST /upload/ instead.',
    );
  };

  /** The presigned PUT of an upload, with everything the client needs to finish it. */
  async function offer(ctx: Koa.Context, upload: DirectUpload) {
    const seconds = Math.max(1, Math.floor((upload.expires_at.getTime() - Date.now()) / 1000));
    const { url, headers } = await target().uploadUrl(upload.id, upload.size, seconds);
    const base = deps.baseUrl(ctx);
    ctx.status = 201;
    ctx.body = {
      id: upload.id,
      method: 'PUT',
      url,
      headers,
      expires_at: upload.expires_at.toISOString(),
      complete_url: routeUrl(base, 'completeUpload', { id: upload.id }),
    };
  }

  const answerFile = (ctx: Koa.Context, row: FileRow, replayed: boolean) => {
    const base = deps.baseUrl(ctx);
    ctx.status = 201;
    ctx.set('Location', fileUrl(row.id, base));
    if (replayed) ctx.set('Idempotent-Replayed', 'true');
    ctx.body = serializeFile(row, base);
  };

  const createUpload: Koa.Middleware = async (ctx) => {
    const direct = target();
    const announced = await readAnnouncement(ctx, Math.min(deps.maxUploadBytes, direct.maxBytes));
    const claim = await claimIdempotencyKey(ctx, deps, deps.idempotencyAbandonAfterMs);
    try {
      if (claim?.state === 'done') {
        if (claim.sha256 !== announced.sha256) {
          throw new AppError(
            'idempotency_key_reused',
            'This Idempotency-Key was used for a different file; use a new key for a new upload.',
          );
        }
        const live = await db.uploads.findLive(claim.fileId);
        if (live) {
          ctx.set('Idempotent-Replayed', 'true');
          return await offer(ctx, live);
        }
        // The first upload was completed or expired since: this request starts a new one under the key.
      }
      const upload = await db.uploads.create(
        {
          id: newId(),
          name: safeFilename(announced.name),
          size: announced.size,
          sha256: announced.sha256,
          expires_at: new Date(Date.now() + deps.expiresMs),
        },
        claim ? claim.scope : undefined,
      );
      await offer(ctx, upload);
    } catch (err) {
      if (claim?.state === 'claimed') await claim.release();
      throw err;
    }
  };

  const completeUpload: Koa.Middleware = async (ctx) => {
    const direct = target();
    const id = parseId(pathParam(ctx, 'id'));
    const notFound = () => new AppError('not_found', 'There is no upload with this id, or it expired.');
    if (!id) throw notFound();
    const upload = await db.uploads.findLive(id);
    if (!upload) {
      // Completed before (a retry of complete): the same File again.
      const done = await db.files.findById(id);
      if (done) return answerFile(ctx, done, true);
      throw notFound();
    }
    const row = await recordUpload(direct, upload);
    if (!row) {
      // A complete running beside this one recorded the File first: its File is the answer.
      const done = await db.files.findById(id);
      if (done) return answerFile(ctx, done, true);
      // Expired between the two statements: no File can be made of its bytes, which go now rather than at expiry.
      await storage.remove(id);
      throw notFound();
    }
    answerFile(ctx, row, false);
  };

  /** Checks what arrived and makes its File; null when the upload ended meanwhile. */
  async function recordUpload(direct: DirectUploadTarget, upload: DirectUpload): Promise<FileRow | null> {
    const { id } = upload;
    const uploaded = await direct.uploaded(id, HEAD_BYTES);
    if (uploaded === null) {
      throw new AppError(
        'upload_incomplete',
        'The bytes have not arrived: send them with the presigned PUT first, then complete the upload.',
      );
    }
    const { size, head } = uploaded;
    if (size !== upload.size) {
      await storage.remove(id);
      throw new AppError(
        'size_mismatch',
        `The object has ${size} bytes, not the ${upload.size} announced; it was removed: PUT the file again.`,
      );
    }
    return deps.intake.admit({ id, filename: upload.name, size, sha256: upload.sha256, head }, { way: 'direct' });
  }

  return { createUpload, completeUpload };
}

/** The announcement: the OpenAPI document's `DirectUploadRequest`, and its validator. */
export const DirectUploadRequestSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 1024, description: 'The file name, as for an upload.' }),
    size: Type.Integer({
      minimum: 0,
      description: 'Exactly how many bytes will be sent (0 answers `file_empty`; over the limit, `file_too_large`).',
    }),
    sha256: Type.String({
      pattern: '^[0-9a-f]{64}$',
      errorMessage: 'The SHA-256 of the bytes, 64 lowercase hex digits.',
      description: 'SHA-256 of the bytes, lowercase hex: required, and checked by the worker (`checksum_mismatch`).',
    }),
  },
  { additionalProperties: false, $id: 'DirectUploadRequest' },
);

/** The JSON announcement, validated by its schema, then against the limits (their own errors). */
async function readAnnouncement(ctx: Koa.Context, maxBytes: number): Promise<Announcement> {
  const announced = await readBody(ctx, DirectUploadRequestSchema, { what: 'announcement', maxBytes: MAX_BODY_BYTES });
  if (announced.size === 0) throw new AppError('file_empty', 'The file is empty; there is nothing to process.');
  if (announced.size > maxBytes) {
    throw new AppError('file_too_large', `The file is larger than the limit of ${maxBytes} bytes.`);
  }
  return announced;
}
