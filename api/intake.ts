// Intake: where every way in (POST /upload/, direct uploads, tus) ends once the bytes are stored. The name is made
// safe, the kind sniffed from the bytes, the File recorded as its way in needs, its job queued and the upload
// counted. It is the one place that decides what a File is made of what arrived: quotas, tenants and grants check
// there, and every way in gets them at once.
import type Koa from 'koa';
import type { Database, IdempotencyScope } from '../core/db/index.js';
import type { FileRow, NewFile } from '../core/fileRecord.js';
import { sniffKind } from '../core/kinds.js';
import type { FileQueue } from '../core/queue/index.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { Metrics } from '../core/telemetry/metrics.js';
import { callerOf } from './auth.js';
import { AppError } from './errors.js';
import { safeFilename } from './filenames.js';

export interface IntakeDeps {
  db: Database;
  queue: FileQueue;
  logger: Logger;
  metrics: Metrics;
}

/** Bytes stored under `id`, not yet a File. */
export interface Arrival {
  id: string;
  /** The client's name for them, as it gave it (made safe here). */
  filename: string | undefined;
  size: number;
  sha256: string;
  /** The first bytes (HEAD_BYTES), for sniffing. */
  head: Buffer;
}

/** How the File is recorded: each way in has its own guarantee. */
export type Recording =
  /** A batched INSERT, which completes the request's idempotency key in the same statement. */
  | { way: 'multipart'; idempotency?: IdempotencyScope }
  /** In the statement that claims the live direct upload: none when it expired or was completed meanwhile. */
  | { way: 'direct' }
  /** Inserted once, whichever completion of the resumable upload gets there first. */
  | { way: 'resumable' };

/** A direct upload may have ended before its File was recorded; the other ways always record one. */
type Admitted<R extends Recording> = R extends { way: 'direct' } ? FileRow | null : FileRow;

export class FileIntake {
  constructor(private readonly deps: IntakeDeps) {}

  /** The File made of what arrived, recorded and queued; null when a direct upload ended before it was claimed. */
  async admit<R extends Recording>(arrival: Arrival, recording: R): Promise<Admitted<R>> {
    const name = safeFilename(arrival.filename);
    const file: NewFile = {
      id: arrival.id,
      name,
      size: arrival.size,
      sha256: arrival.sha256,
      ...(await sniffKind(arrival.head, name)),
    };
    const row = await this.record(file, recording);
    if (!row) return null as Admitted<R>;
    await enqueueOrLeaveQueued(this.deps.queue, this.deps.logger, row);
    this.deps.metrics.uploads.inc({ kind: row.kind });
    this.deps.metrics.uploadBytes.inc({ kind: row.kind }, row.size);
    return row;
  }

  private record(file: NewFile, recording: Recording): Promise<FileRow | null> {
    const { files } = this.deps.db;
    switch (recording.way) {
      case 'multipart':
        return files.insert(file, recording.idempotency);
      case 'direct':
        return files.insertFromUpload(file);
      case 'resumable':
        return files.insertIfAbsent(file);
    }
  }
}

/**
 * Enqueues the file's job. A failure (Redis down) is logged, not raised: the row is the source of truth, and a
 * queued row without a job is enqueued again by the reconciler.
 */
export async function enqueueOrLeaveQueued(queue: FileQueue, logger: Logger, row: FileRow): Promise<void> {
  try {
    await queue.enqueue(row.id, row.kind);
  } catch (err) {
    logger.warn({ err, file_id: row.id }, 'could not enqueue the file; it stays queued');
  }
}

export type HeldClaim = { scope: IdempotencyScope } & (
  { state: 'claimed'; release(): Promise<void> } | { state: 'done'; fileId: string; sha256: string }
);

/**
 * Claims the request's Idempotency-Key (undefined without one): answers 409 while the key's first request
 * runs; `release` gives up a claim whose request failed (a failure to release is logged, not raised).
 */
export async function claimIdempotencyKey(
  ctx: Koa.Context,
  { db, logger }: { db: Database; logger: Logger },
  abandonAfterMs: number,
): Promise<HeldClaim | undefined> {
  const scope = idempotencyScopeOf(ctx);
  if (!scope) return undefined;
  const claim = await db.idempotencyKeys.claim(scope, abandonAfterMs);
  if (claim.state === 'in_progress') {
    throw new AppError(
      'idempotency_key_in_use',
      'A request with this Idempotency-Key is still running; retry once it has finished.',
      { headers: { 'Retry-After': '1' } },
    );
  }
  if (claim.state === 'done') return { ...claim, scope };
  return {
    state: 'claimed',
    scope,
    release: () =>
      db.idempotencyKeys
        .release(scope)
        .catch((err: unknown) => logger.error({ err }, 'could not release an idempotency key')),
  };
}

/** The Idempotency-Key of the request, scoped to its client; undefined without one. */
function idempotencyScopeOf(ctx: Koa.Context): IdempotencyScope | undefined {
  const key = ctx.get('Idempotency-Key');
  if (!key) return undefined;
  if (!/^[\x21-\x7e]{1,255}$/.test(key)) {
    throw new AppError(
      'invalid_idempotency_key',
      'An Idempotency-Key is 1 to 255 visible ASCII characters (a UUID is a good choice).',
    );
  }
  return { scope: callerOf(ctx), key };
}
