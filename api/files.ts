// Handlers of the File resource other than the upload.
import type Koa from 'koa';
import type { Cursor, Database } from '../core/db/index.js';
import type { FileRow } from '../core/fileRecord.js';
import { parseId } from '../core/ids.js';
import type { FileQueue } from '../core/queue/index.js';
import type { BlobStore } from '../core/storage/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import { sendContent } from './content.js';
import { AppError, RETRY_SHORTLY } from './errors.js';
import { readBody } from './json.js';
import {
  encodeCursor,
  LIST_PAGE_MAX_BYTES,
  nextPageUrl,
  parseListQuery,
  reprocessRequestOf,
  ReprocessFilesRequestSchema,
  type ReprocessFilesResult,
  type ReprocessRequest,
} from './listing.js';
import { pathParam, routeUrl } from './routes.js';
import { serializeFile } from './serializer.js';
import { sendRendering } from './renderings.js';
import { enqueueOrLeaveQueued } from './intake.js';
import { parseWait, type Waiters } from './waiting.js';

export interface FileHandlerDeps {
  db: Database;
  queue: FileQueue;
  storage: BlobStore;
  logger: Logger;
  baseUrl: (ctx: Koa.Context) => string;
  /** Answer downloads with a redirect to the store's presigned URL, where it has one (DOWNLOAD_REDIRECT). */
  downloadRedirect?: boolean;
  /** GET /files/{id}/?wait=N; without them (MAX_WAITERS=0), `wait` is ignored. */
  waiters?: Waiters;
  /** Malware scanning is on (SCAN_CLAMD): bytes are served only once cleared. */
  scanning?: { allowUnscannable: boolean };
}

/** A bulk reprocess re-queues this many files per statement: each page's row locks are held for one statement only. */
const REQUEUE_PAGE = 500;
/** A bulk reprocess's filters are a few dozen bytes; anything much longer is not them. */
const MAX_FILTERS_BYTES = 4096;

/** Beyond its wait, a waiting request's connection may stay silent this much longer before the idle timeout. */
const IDLE_GRACE_MS = 5_000;

const notFound = () => new AppError('not_found', 'There is no file with this id.');

/** The `id` path parameter in canonical form; 404 for a malformed id, as for an unknown one. */
function idOf(ctx: Koa.Context): string {
  const id = parseId(pathParam(ctx, 'id'));
  if (!id) throw notFound();
  return id;
}

/** The row named by the `id` path parameter; 404 for unknown and malformed ids alike. */
async function findFile(ctx: Koa.Context, db: Database): Promise<FileRow> {
  const row = await db.files.findById(idOf(ctx));
  if (!row) throw notFound();
  return row;
}

export function fileHandlers(deps: FileHandlerDeps) {
  const { db, queue, storage, logger, baseUrl, waiters } = deps;

  const listFiles: Koa.Middleware = async (ctx) => {
    const query = parseListQuery(ctx.query);
    const { rows, more } = await db.files.list({ ...query, maxBytes: LIST_PAGE_MAX_BYTES });
    const last = rows.at(-1);
    const base = baseUrl(ctx);
    ctx.body = {
      results: rows.map((row) => serializeFile(row, base)),
      next:
        more && last
          ? nextPageUrl(routeUrl(base, 'listFiles'), query, { uploadedAt: last.uploaded_at, id: last.id })
          : null,
    };
  };

  const getFile: Koa.Middleware = async (ctx) => {
    const id = idOf(ctx);
    const waitMs = waiters ? parseWait(ctx.query) : null;
    const row = waiters && waitMs ? await waitFor(ctx, waiters, id, waitMs) : await db.files.findById(id);
    if (!row) throw notFound();
    ctx.body = serializeFile(row, baseUrl(ctx));
  };

  /** Waits for the File to settle; a client that goes away drops its waiter at once. */
  const waitFor = async (ctx: Koa.Context, waiters: Waiters, id: string, ms: number): Promise<FileRow | null> => {
    const gone = new AbortController();
    // The response's 'close' before it is sent means the connection closed (the request's fires when it is read).
    const onClose = () => gone.abort();
    ctx.res.once('close', onClose);
    if (ctx.req.socket.destroyed) gone.abort();
    // The server closes a connection silent for HTTP_IDLE_TIMEOUT_MS, and a wait is silent by design.
    const socket = ctx.req.socket;
    const idleMs = socket.timeout;
    if (idleMs && idleMs < ms + IDLE_GRACE_MS) socket.setTimeout(ms + IDLE_GRACE_MS);
    try {
      return await waiters.waitFor(id, ms, gone.signal, () => db.files.findById(id));
    } finally {
      ctx.res.off('close', onClose);
      if (idleMs && idleMs < ms + IDLE_GRACE_MS) socket.setTimeout(idleMs);
    }
  };

  const getContent: Koa.Middleware = async (ctx) => {
    await sendContent(ctx, servable(await findFile(ctx, db)), storage, deps.downloadRedirect ?? false);
  };

  const getThumbnail: Koa.Middleware = async (ctx) => {
    await sendRendering(ctx, servable(await findFile(ctx, db)), storage, 'thumbnail');
  };

  const getPreview: Koa.Middleware = async (ctx) => {
    await sendRendering(ctx, servable(await findFile(ctx, db)), storage, 'preview');
  };

  /**
   * The row, if its bytes (or anything made of them) may be served: never an infected file's; with scanning on, only
   * once the scanner cleared them (or could not read them whole, with SCAN_UNSCANNABLE=allow). Fail closed.
   */
  function servable(row: FileRow): FileRow {
    const { scan } = row;
    if (scan?.status === 'infected') {
      throw new AppError(
        'file_infected',
        `The scanner found malware in this file (${scan.signature ?? 'unnamed'}); its bytes are never served.`,
      );
    }
    if (!deps.scanning || scan?.status === 'clean') return row;
    if (scan?.status === 'unscannable') {
      if (deps.scanning.allowUnscannable) return row;
      throw new AppError(
        'file_unscannable',
        'The scanner could not read this file whole, so it is not known to be clean; its bytes are not served.',
      );
    }
    throw new AppError(
      'scan_pending',
      'The file has not been scanned for malware yet: it waits in the queue (or was stored before scanning was on: ' +
        'reprocess it). Retry once it is processed.',
      { headers: RETRY_SHORTLY },
    );
  }

  /** The bytes of a deleted File; where its direct upload's PUT may still be replayed, a placeholder bars it. */
  const removeBlobs = async (id: string): Promise<void> => {
    if (storage.direct && (await db.uploads.hasLivePut(id))) return storage.direct.removeBarringReplays(id);
    return storage.remove(id);
  };

  const deleteFile: Koa.Middleware = async (ctx) => {
    const id = idOf(ctx);
    const row = await db.files.remove(id);
    if (!row) throw notFound();
    // The row is gone, so the file is gone for clients; leftovers are logged and swept later.
    await Promise.all([
      removeBlobs(id).catch((err: unknown) =>
        logger.error({ err, file_id: id }, 'could not remove the bytes of a deleted file'),
      ),
      queue
        .remove(id)
        .catch((err: unknown) => logger.warn({ err, file_id: id }, 'could not remove the job of a deleted file')),
    ]);
    ctx.status = 204;
  };

  const reprocessFile: Koa.Middleware = async (ctx) => {
    const outcome = await db.files.requeue(idOf(ctx));
    if (!outcome) throw notFound();
    if ('busy' in outcome) {
      throw new AppError(
        'file_processing',
        'The file is being processed right now; reprocess it once it has finished.',
      );
    }
    await enqueueOrLeaveQueued(queue, logger, outcome.row);
    ctx.status = 202;
    ctx.body = serializeFile(outcome.row, baseUrl(ctx));
  };

  const reprocessFiles: Koa.Middleware = async (ctx) => {
    const request = reprocessRequestOf(
      await readBody(ctx, ReprocessFilesRequestSchema, {
        what: 'filters',
        maxBytes: MAX_FILTERS_BYTES,
        mayBeEmpty: true,
      }),
    );
    const { filter, limit, dryRun } = request;
    const { count, last } = dryRun
      ? await db.files.countMatching(filter, limit, request.after)
      : await requeueMatching(request);
    // Only a call that took all it may take can leave files behind; re-queued ones are behind `last`.
    const more = count === limit && last !== null && (await db.files.countMatching(filter, 1, last)).count > 0;
    const result: ReprocessFilesResult = {
      matched: count,
      requeued: dryRun ? 0 : count,
      dry_run: dryRun,
      next_cursor: more && last ? encodeCursor(last) : null,
    };
    logger.info({ request_id: ctx.state.requestId, filter, ...result }, 'bulk reprocess');
    // A dry run is done when it answers; a re-queue has only begun.
    ctx.status = dryRun ? 200 : 202;
    ctx.body = result;
  };

  /** Re-queues up to `limit` matching files a page at a time, enqueueing each page once its rows are committed. */
  async function requeueMatching({ filter, limit, after }: ReprocessRequest) {
    let count = 0;
    let last: Cursor | null = after ?? null;
    while (count < limit) {
      const size = Math.min(REQUEUE_PAGE, limit - count);
      const rows = await db.files.requeueMatching(filter, size, last ?? undefined);
      // Redis away: one line per page, not per file; the rows stay queued and the reconciler enqueues them.
      const enqueued = await Promise.allSettled(rows.map((row) => queue.enqueue(row.id, row.kind)));
      const failed = enqueued.filter((outcome) => outcome.status === 'rejected');
      if (failed.length > 0) {
        logger.warn(
          { err: failed[0]!.reason, files: failed.length },
          'could not enqueue re-queued files; they stay queued',
        );
      }
      count += rows.length;
      const end = rows.at(-1);
      if (end) last = { uploadedAt: end.uploaded_at, id: end.id };
      if (rows.length < size) break;
    }
    return { count, last };
  }

  return { listFiles, getFile, getContent, getThumbnail, getPreview, deleteFile, reprocessFile, reprocessFiles };
}
