// Direct uploads (BLOB_STORE=s3): POST /uploads/ announces a file and answers a presigned PUT with its
// length signed in, which can only create the blob; the client sends the bytes straight to the bucket;
// POST /uploads/{id}/complete reads the object's size and head in one request, sniffs the kind and records the
// File in the statement that marks the upload completed, so an upload becomes one File at most. The bytes never
// pass through the API; the worker checks the announced sha256. The upload is remembered until its PUT is dead
// (core/db/uploads.ts), so a DELETE of the File can leave the key barred to a replay of it (api/files.ts).
import type Koa from 'koa';
import type { DirectUpload } from '../core/db/index.js';
import type { FileRow } from '../core/fileRecord.js';
import { newFileId, parseFileId } from '../core/ids.js';
import { sniffKind } from '../core/kinds.js';
import { HEAD_BYTES, type DirectUploadTarget } from '../core/storage/index.js';
import { AppError } from './errors.js';
import { safeFilename } from './filenames.js';
import { readJsonBody } from './json.js';
import { pathParam, routeUrl } from './routes.js';
import { fileUrl, serializeFile } from './serializer.js';
import { claimIdempotencyKey, enqueueOrLeaveQueued, type FileIntakeDeps } from './upload.js';

export interface DirectUploadDeps extends FileIntakeDeps {
  expiresMs: number;
}

/** The announcement's JSON is small; anything longer is not one. */
const MAX_BODY_BYTES = 16 * 1024;
const SHA256 = /^[0-9a-f]{64}$/;

interface Announcement {
  name: string;
  size: number;
  sha256: string;
}

export function directUploadHandlers(deps: DirectUploadDeps) {
  const { db, storage, logger } = deps;

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
          id: newFileId(),
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
    const id = parseFileId(pathParam(ctx, 'id'));
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
    await enqueueOrLeaveQueued(deps.queue, logger, row);
    deps.metrics.uploads.inc({ kind: row.kind });
    deps.metrics.uploadBytes.inc({ kind: row.kind }, row.size);
    answerFile(ctx, row, false);
  };

  /** Checks what arrived and records its File; null when the upload ended meanwhile. */
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
    const sniffed = await sniffKind(head, upload.name);
    return db.files.insertFromUpload({ id, name: upload.name, size, sha256: upload.sha256, ...sniffed });
  }

  return { createUpload, completeUpload };
}

const ANNOUNCEMENT_FIELDS = ['name', 'size', 'sha256'];
const ANNOUNCEMENT_SHAPE = '{"name", "size", "sha256"}, each required';

/** The JSON announcement, validated: a clear 400 naming each bad field, or the limits' own errors. */
async function readAnnouncement(ctx: Koa.Context, maxBytes: number): Promise<Announcement> {
  const body = await readJsonBody(ctx, {
    what: 'announcement',
    shape: ANNOUNCEMENT_SHAPE,
    maxBytes: MAX_BODY_BYTES,
  });
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new AppError('invalid_body', `The body is not a JSON object; send ${ANNOUNCEMENT_SHAPE}.`);
  }
  const fields = body as Record<string, unknown>;
  const errors: Array<{ field: string; message: string }> = [];
  // Refused rather than ignored, as in every body: a client that sends more expects it to mean something.
  for (const field of Object.keys(fields).filter((key) => !ANNOUNCEMENT_FIELDS.includes(key)))
    errors.push({ field, message: `not a field of an announcement (${ANNOUNCEMENT_FIELDS.join(', ')})` });
  const { name, size, sha256 } = fields;
  if (typeof name !== 'string' || name.length === 0 || name.length > 1024)
    errors.push({ field: 'name', message: 'a file name of 1 to 1024 characters' });
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0)
    errors.push({ field: 'size', message: 'the size in bytes, a whole number' });
  if (typeof sha256 !== 'string' || !SHA256.test(sha256))
    errors.push({ field: 'sha256', message: 'the SHA-256 of the bytes, 64 lowercase hex digits' });
  if (errors.length) throw new AppError('invalid_body', 'Some fields are invalid; see `errors`.', { errors });
  const announced = { name, size, sha256 } as Announcement;
  if (announced.size === 0) throw new AppError('file_empty', 'The file is empty; there is nothing to process.');
  if (announced.size > maxBytes) {
    throw new AppError('file_too_large', `The file is larger than the limit of ${maxBytes} bytes.`);
  }
  return announced;
}
