// The files table: every read and state transition of a File goes through here.
// State changes are conditional updates, so a stale or duplicate job can never move a row backwards.
import type { FileError, FileKind, FileResult, FileRow, FileStatus, NewFile, Scan } from '../fileRecord.js';
import { Batcher } from '../batcher.js';
import { storableString } from '../results/bounds.js';
import { insertManyRemembered, type IdempotencyScope } from './idempotency.js';

/** Runs one parameterized statement and returns its rows. */
export type Sql = <T = Record<string, unknown>>(text: string, values?: unknown[]) => Promise<T[]>;

/** Runs `work`'s statements in one transaction on one connection: committed if it resolves, rolled back if not. */
export type Transaction = <R>(work: (sql: Sql) => Promise<R>) => Promise<R>;

export interface ListFilter {
  status?: FileStatus;
  kind?: FileKind;
  processed?: boolean;
  /** The `code` of the file's last failure (`error->>'code'`). */
  errorCode?: string;
  /** Uploaded strictly before this instant. */
  uploadedBefore?: Date;
}

/** Position after which a page starts: the last row of the previous page. */
export interface Cursor {
  uploadedAt: Date;
  id: string;
}

export interface ListQuery extends ListFilter {
  limit: number;
  after?: Cursor;
}

/** A row the reconciler looks at, and its place in the (updated_at, id) order. */
export interface StaleRow {
  id: string;
  kind: FileKind;
  updated_at: Date;
}
export type StalePosition = Pick<StaleRow, 'id' | 'updated_at'>;

interface StoredRow extends Omit<FileRow, 'size'> {
  size: string | number; // bigint arrives as a string
}

const toRow = ({ size, ...rest }: StoredRow): FileRow => ({ ...rest, size: Number(size) });

const tooManyAttempts = (maxAttempts: number): FileError => ({
  code: 'too_many_attempts',
  message: `Processing started ${maxAttempts} times without finishing (a worker failed or crashed each time); reprocess the file to try again.`,
});

/** The columns of a FileRow, whose shape the File schema defines (core/fileRecord.ts). */
const ROW_COLUMNS = [
  'id',
  'name',
  'size',
  'content_type',
  'kind',
  'sha256',
  'status',
  'attempts',
  'result',
  'error',
  'uploaded_at',
  'processed_at',
  'has_thumbnail',
  'has_preview',
  'scan',
] as const satisfies readonly (keyof FileRow)[];
type Unlisted = Exclude<keyof FileRow, (typeof ROW_COLUMNS)[number]>;
// Compiles only while no FileRow field is missing above; the error names the one that is.
const _everyColumnListed: [Unlisted] extends [never] ? true : Unlisted = true;
const COLUMNS = ROW_COLUMNS.join(', ');
/**
 * JSON for a jsonb column. PostgreSQL's jsonb refuses NUL and lone surrogates, which a parsed file can put in any
 * string (a PDF title in UTF-16, a name cut inside a pair): both become U+FFFD, the replacement character. The
 * worker bounds results before this (core/results/bounds.ts); this is the last line for every jsonb written.
 */
const toJsonb = (value: unknown): string =>
  JSON.stringify(value, (_key, field: unknown) => (typeof field === 'string' ? storableString(field) : field));

/** The derived files (blob variants) a result came with. */
export interface StoredRenderings {
  thumbnail: boolean;
  preview: boolean;
}

/** What re-queueing resets, for one file and in bulk: a fresh start, as if just uploaded. */
const REQUEUE_SET =
  "status = 'queued', attempts = 0, result = NULL, error = NULL, has_thumbnail = false, has_preview = false, scan = NULL, updated_at = now()";

/** COLUMNS of `files AS f`, for statements that join it with another row source. */
const F_COLUMNS = COLUMNS.split(', ')
  .map((column) => `f.${column}`)
  .join(', ');

/**
 * The worker's two updates per job go in batches (see core/batcher.ts). Measured with one API and one
 * worker (8 jobs at once) uploading and processing 4,000 small texts: PostgreSQL's CPU per file fell from
 * 1.58 to 1.29 ms and the files processed per second rose from 269 to 300.
 */
const BATCH_MAX = 32;

export class FileRepository {
  private readonly inserts: Batcher<{ file: NewFile; idempotency: IdempotencyScope | undefined }, FileRow>;

  constructor(
    private readonly sql: Sql,
    insertBatchMax = BATCH_MAX,
  ) {
    this.inserts = new Batcher((inserts) => this.insertBatch(inserts), {
      max: insertBatchMax,
      key: (insert) => insert.file.id.toLowerCase(),
    });
  }

  /**
   * The upload hot path: one round trip, shared by the uploads whose INSERT comes while the previous one is in flight
   * (see core/batcher.ts). With an idempotency key, the same statement records the file against the key, so a key
   * is never left pointing nowhere.
   */
  insert(file: NewFile, idempotency?: IdempotencyScope): Promise<FileRow> {
    return this.inserts.call({ file, idempotency });
  }

  private async insertBatch(
    inserts: Array<{ file: NewFile; idempotency: IdempotencyScope | undefined }>,
  ): Promise<FileRow[]> {
    const files = inserts.map((insert) => insert.file);
    const rows = await insertManyRemembered<StoredRow>(
      this.sql,
      `INSERT INTO files (id, name, size, content_type, kind, sha256)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[])
       RETURNING ${COLUMNS}`,
      [
        files.map((file) => file.id),
        files.map((file) => file.name),
        files.map((file) => file.size),
        files.map((file) => file.content_type),
        files.map((file) => file.kind),
        files.map((file) => file.sha256),
      ],
      inserts.map((insert) => insert.idempotency),
      { id: 1, sha256: 6 },
    );
    const byId = new Map(rows.map((row) => [row.id, row]));
    return files.map((file) => {
      const row = byId.get(file.id.toLowerCase());
      if (!row) throw new Error(`File ${file.id} is missing from the rows its INSERT returned.`);
      return toRow(row);
    });
  }

  /**
   * The File of a completed direct upload: inserted in the statement that marks the live upload completed, so an
   * upload becomes one File at most. Null when there was no live upload (unknown, expired or completed).
   */
  async insertFromUpload(file: NewFile): Promise<FileRow | null> {
    const rows = await this.sql<StoredRow>(
      `WITH claimed AS (UPDATE direct_uploads SET completed_at = now()
                        WHERE id = $1 AND expires_at > now() AND completed_at IS NULL RETURNING id)
       INSERT INTO files (id, name, size, content_type, kind, sha256)
       SELECT $1::uuid, $2::text, $3::bigint, $4::text, $5::text, $6::char(64) FROM claimed
       RETURNING ${COLUMNS}`,
      [file.id, file.name, file.size, file.content_type, file.kind, file.sha256],
    );
    return rows[0] ? toRow(rows[0]) : null;
  }

  /** The File of a finished resumable upload: inserted once, whichever completion of it gets here first. */
  async insertIfAbsent(file: NewFile): Promise<FileRow> {
    const rows = await this.sql<StoredRow>(
      `INSERT INTO files (id, name, size, content_type, kind, sha256) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO NOTHING RETURNING ${COLUMNS}`,
      [file.id, file.name, file.size, file.content_type, file.kind, file.sha256],
    );
    if (rows[0]) return toRow(rows[0]);
    const existing = await this.findById(file.id);
    if (!existing) throw new Error(`File ${file.id} was inserted and removed meanwhile.`);
    return existing;
  }

  async findById(id: string): Promise<FileRow | null> {
    const rows = await this.sql<StoredRow>(`SELECT ${COLUMNS} FROM files WHERE id = $1`, [id]);
    return rows[0] ? toRow(rows[0]) : null;
  }

  /**
   * A page of files, newest first, keyset-paginated (the cost of a page does not depend on its position), of `limit`
   * rows at most and stopping once `maxBytes` of records are in it (the row that crosses it is the last; a page has
   * one row at least). `more` says whether rows follow it. A row's bytes are its result, error and name as text.
   */
  async list(query: ListQuery & { maxBytes: number }): Promise<{ rows: FileRow[]; more: boolean }> {
    const values: unknown[] = [];
    const bind = (value: unknown) => `$${values.push(value)}`;
    const where = this.filterConditions(query, bind);
    if (query.after) where.push(`(uploaded_at, id) < (${bind(query.after.uploadedAt)}, ${bind(query.after.id)})`);
    const weight =
      "octet_length(coalesce(result::text, '')) + octet_length(coalesce(error::text, '')) + octet_length(name)";
    const order = 'ORDER BY uploaded_at DESC, id DESC';
    // Each row knows the bytes of the rows before it in the page, and before its predecessor: the page ends at the
    // row that crosses the budget, and one row past it comes back too, to tell that more follow.
    const rows = await this.sql<StoredRow & { bytes_before: string | null }>(
      `SELECT ${COLUMNS}, bytes_before FROM (
         SELECT ${COLUMNS},
           sum(${weight}) OVER (${order} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS bytes_before,
           sum(${weight}) OVER (${order} ROWS BETWEEN UNBOUNDED PRECEDING AND 2 PRECEDING) AS bytes_before_previous
         FROM files ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
         ${order} LIMIT ${bind(query.limit + 1)}
       ) AS page
       WHERE coalesce(bytes_before_previous, 0) < ${bind(query.maxBytes)}
       ${order}`,
      values,
    );
    const page = rows.filter((row) => Number(row.bytes_before ?? 0) < query.maxBytes).slice(0, query.limit);
    return {
      rows: page.map(({ bytes_before: _, ...row }) => toRow(row)),
      more: rows.length > page.length,
    };
  }

  async remove(id: string): Promise<FileRow | null> {
    const rows = await this.sql<StoredRow>(`DELETE FROM files WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
    return rows[0] ? toRow(rows[0]) : null;
  }

  /**
   * queued → processing, counting the attempt; or, once `maxAttempts` starts were used up (a file that keeps
   * failing or killing workers), → failed with `too_many_attempts`. A row already `processing` is a re-delivery
   * (its last attempt died with its worker, or is being retried): it answers `redelivered` and changes nothing,
   * unless `countRedelivery` says to count a new attempt for it. Null when the row is gone or already finished.
   */
  startProcessing(
    id: string,
    maxAttempts: number,
    options: { countRedelivery?: boolean } = {},
  ): Promise<FileRow | 'redelivered' | null> {
    return this.starts.call({ id, maxAttempts, countRedelivery: options.countRedelivery ?? false });
  }

  private readonly starts = new Batcher<
    { id: string; maxAttempts: number; countRedelivery: boolean },
    FileRow | 'redelivered' | null
  >(
    async (starts) => {
      const rows = await this.sql<StoredRow>(
        `UPDATE files AS f SET
           status = CASE WHEN f.attempts >= s.max_attempts THEN 'failed' ELSE 'processing' END,
           attempts = CASE WHEN f.attempts >= s.max_attempts THEN f.attempts ELSE f.attempts + 1 END,
           error = CASE WHEN f.attempts >= s.max_attempts THEN s.too_many ELSE f.error END,
           updated_at = now()
         FROM unnest($1::uuid[], $2::int[], $3::jsonb[], $4::bool[]) AS s(id, max_attempts, too_many, count_redelivery)
         WHERE f.id = s.id AND (f.status = 'queued' OR (f.status = 'processing' AND (s.count_redelivery OR f.attempts >= s.max_attempts)))
         RETURNING ${F_COLUMNS}`,
        [
          starts.map((start) => start.id),
          starts.map((start) => start.maxAttempts),
          starts.map((start) => JSON.stringify(tooManyAttempts(start.maxAttempts))),
          starts.map((start) => start.countRedelivery),
        ],
      );
      const byId = new Map<string, FileRow | 'redelivered'>(rows.map((row) => [row.id, toRow(row)]));
      // Left alone: gone, finished, or (the rare case that costs a second statement) a re-delivery.
      const missed = starts.filter((start) => !start.countRedelivery && !byId.has(start.id)).map((start) => start.id);
      if (missed.length > 0) {
        const redelivered = await this.sql<{ id: string }>(
          "SELECT id FROM files WHERE id = ANY($1::uuid[]) AND status = 'processing'",
          [missed],
        );
        for (const { id } of redelivered) byId.set(id, 'redelivered');
      }
      return starts.map((start) => byId.get(start.id) ?? null);
    },
    { max: BATCH_MAX, key: (start) => start.id },
  );

  /** Queued rows untouched since `before`, oldest first, from just after `after` in that order. */
  async staleQueued(before: Date, limit: number, after?: StalePosition): Promise<StaleRow[]> {
    const position = after ? 'AND (updated_at, id) > ($3, $4)' : '';
    return this.sql(
      `SELECT id, kind, updated_at FROM files WHERE status = 'queued' AND updated_at < $1 ${position}
       ORDER BY updated_at, id LIMIT $2`,
      after ? [before, limit, after.updated_at, after.id] : [before, limit],
    );
  }

  /** Processing rows untouched since `before`: their job may be gone. */
  async staleProcessing(before: Date, limit: number): Promise<StaleRow[]> {
    return this.sql(
      "SELECT id, kind, updated_at FROM files WHERE status = 'processing' AND updated_at < $1 ORDER BY updated_at LIMIT $2",
      [before, limit],
    );
  }

  /** Which of these ids have a row. */
  async existing(ids: string[]): Promise<Set<string>> {
    const rows = await this.sql<{ id: string }>('SELECT id FROM files WHERE id = ANY($1::uuid[])', [ids]);
    return new Set(rows.map((row) => row.id));
  }

  /** queued → failed, for a file whose bytes are gone before it was ever processed. */
  async failQueued(id: string, error: FileError): Promise<boolean> {
    const rows = await this.sql(
      "UPDATE files SET status = 'failed', error = $2, updated_at = now() WHERE id = $1 AND status = 'queued' RETURNING id",
      [id, JSON.stringify(error)],
    );
    return rows.length === 1;
  }

  /**
   * processing → processed, only for the attempt that is still current; `renderings` say which were stored, `scan` is
   * the scanner's verdict (null with scanning off); `traceParent` is the trace context its webhook events link to.
   */
  finishProcessing(
    id: string,
    attempt: number,
    result: FileResult,
    renderings: StoredRenderings = { thumbnail: false, preview: false },
    traceParent: string | null = null,
    scan: Scan | null = null,
  ): Promise<boolean> {
    return this.finishes.call({ id, attempt, result, ...renderings, traceParent, scan });
  }

  private readonly finishes = new Batcher<
    {
      id: string;
      attempt: number;
      result: FileResult;
      thumbnail: boolean;
      preview: boolean;
      traceParent: string | null;
      scan: Scan | null;
    },
    boolean
  >(
    async (finishes) => {
      const rows = await this.sql<{ id: string }>(
        `UPDATE files AS f SET status = 'processed', result = d.result, error = NULL, has_thumbnail = d.thumbnail, has_preview = d.preview, processed_at = now(), updated_at = now(), trace_parent = d.trace_parent, scan = d.scan
         FROM unnest($1::uuid[], $2::int[], $3::jsonb[], $4::bool[], $5::text[], $6::jsonb[], $7::bool[]) AS d(id, attempt, result, thumbnail, trace_parent, scan, preview)
         WHERE f.id = d.id AND f.status = 'processing' AND f.attempts = d.attempt RETURNING f.id`,
        [
          finishes.map((done) => done.id),
          finishes.map((done) => done.attempt),
          finishes.map((done) => toJsonb(done.result)),
          finishes.map((done) => done.thumbnail),
          finishes.map((done) => done.traceParent),
          finishes.map((done) => (done.scan ? toJsonb(done.scan) : null)),
          finishes.map((done) => done.preview),
        ],
      );
      const finished = new Set(rows.map((row) => row.id));
      return finishes.map((done) => finished.has(done.id));
    },
    { max: BATCH_MAX, key: (done) => done.id },
  );

  /** processing → failed, only for the attempt that is still current (`traceParent` and `scan` as for finishProcessing). */
  async failProcessing(
    id: string,
    attempt: number,
    error: FileError,
    traceParent: string | null = null,
    scan: Scan | null = null,
  ): Promise<boolean> {
    const rows = await this.sql(
      `UPDATE files SET status = 'failed', error = $3, result = NULL, has_thumbnail = false, has_preview = false, updated_at = now(), trace_parent = $4, scan = $5
       WHERE id = $1 AND status = 'processing' AND attempts = $2 RETURNING id`,
      [id, attempt, toJsonb(error), traceParent, scan ? toJsonb(scan) : null],
    );
    return rows.length === 1;
  }

  /**
   * processing → queued, taking back the attempt: the attempt could not begin for a reason not the file's (the
   * scanner was away), and waits to start again. Only for the attempt that is still current.
   */
  async releaseProcessing(id: string, attempt: number): Promise<boolean> {
    const rows = await this.sql(
      `UPDATE files SET status = 'queued', attempts = attempts - 1, updated_at = now()
       WHERE id = $1 AND status = 'processing' AND attempts = $2 RETURNING id`,
      [id, attempt],
    );
    return rows.length === 1;
  }

  /**
   * Back to queued with a fresh attempt count, unless a worker is processing it right now
   * (then the result is `busy` and nothing changes).
   */
  async requeue(id: string): Promise<{ row: FileRow } | { busy: true } | null> {
    const rows = await this.sql<StoredRow>(
      `UPDATE files SET ${REQUEUE_SET}
       WHERE id = $1 AND status <> 'processing' RETURNING ${COLUMNS}`,
      [id],
    );
    if (rows[0]) return { row: toRow(rows[0]) };
    return (await this.findById(id)) ? { busy: true } : null;
  }

  /**
   * A page of a bulk reprocess: the next `limit` settled files matching `filter` after `after`, in (uploaded_at, id)
   * order, back to queued as `requeue` puts one; answered in that order. A row another transaction holds is skipped:
   * it is being reprocessed or deleted, so it leaves the filter anyway. Moving to queued emits no webhook event.
   */
  async requeueMatching(
    filter: ListFilter & { status: 'processed' | 'failed' },
    limit: number,
    after?: Cursor,
  ): Promise<FileRow[]> {
    const { where, values, bind } = this.settledAfter(filter, after);
    const rows = await this.sql<StoredRow>(
      `WITH picked AS (
         SELECT id FROM files WHERE ${where} ORDER BY uploaded_at, id LIMIT ${bind(limit)} FOR UPDATE SKIP LOCKED
       ), taken AS (
         UPDATE files AS f SET ${REQUEUE_SET}
         FROM picked WHERE f.id = picked.id RETURNING ${F_COLUMNS}
       )
       SELECT ${COLUMNS} FROM taken ORDER BY uploaded_at, id`,
      values,
    );
    return rows.map(toRow);
  }

  /**
   * How many settled files match `filter` after `after`, counting `limit` at most, and the position of the last one
   * counted (null when none match): what requeueMatching with the same arguments would take, changing nothing.
   */
  async countMatching(
    filter: ListFilter & { status: 'processed' | 'failed' },
    limit: number,
    after?: Cursor,
  ): Promise<{ count: number; last: Cursor | null }> {
    const { where, values, bind } = this.settledAfter(filter, after);
    const rows = await this.sql<{ count: number; uploaded_at: Date; id: string }>(
      `SELECT (count(*) OVER ())::int AS count, uploaded_at, id
       FROM (SELECT uploaded_at, id FROM files WHERE ${where} ORDER BY uploaded_at, id LIMIT ${bind(limit)}) AS matching
       ORDER BY uploaded_at DESC, id DESC LIMIT 1`,
      values,
    );
    const last = rows[0];
    return last ? { count: last.count, last: { uploadedAt: last.uploaded_at, id: last.id } } : { count: 0, last: null };
  }

  /** The WHERE of a bulk reprocess page: the filter, and past `after` in ascending (uploaded_at, id) order. */
  private settledAfter(filter: ListFilter & { status: 'processed' | 'failed' }, after?: Cursor) {
    const values: unknown[] = [];
    const bind = (value: unknown) => `$${values.push(value)}`;
    const conditions = this.filterConditions(filter, bind);
    if (after) conditions.push(`(uploaded_at, id) > (${bind(after.uploadedAt)}, ${bind(after.id)})`);
    return { where: conditions.join(' AND '), values, bind };
  }

  /** The conditions of a ListFilter, each value bound with `bind`. */
  private filterConditions(filter: ListFilter, bind: (value: unknown) => string): string[] {
    const conditions: string[] = [];
    if (filter.status) conditions.push(`status = ${bind(filter.status)}`);
    if (filter.kind) conditions.push(`kind = ${bind(filter.kind)}`);
    if (filter.processed !== undefined)
      conditions.push(filter.processed ? "status = 'processed'" : "status <> 'processed'");
    // Only failed files carry an error (every other transition clears it): saying so lets the partial index serve it.
    if (filter.errorCode !== undefined)
      conditions.push(`status = 'failed' AND error->>'code' = ${bind(filter.errorCode)}`);
    if (filter.uploadedBefore) conditions.push(`uploaded_at < ${bind(filter.uploadedBefore)}`);
    return conditions;
  }
}
