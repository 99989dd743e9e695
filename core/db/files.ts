// The files table: every read and state transition of a File goes through here.
// State changes are conditional updates, so a stale or duplicate job can never move a row backwards.
import type { ModelStatic, Model } from 'sequelize';
import type { FileError, FileKind, FileResult, FileRow, FileStatus, NewFile } from '../fileRecord.js';

/** Runs one parameterized statement and returns its rows. */
export type Sql = <T = Record<string, unknown>>(text: string, values?: unknown[]) => Promise<T[]>;

export interface ListFilter {
  status?: FileStatus;
  kind?: FileKind;
  processed?: boolean;
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

interface StoredRow extends Omit<FileRow, 'size'> {
  size: string | number; // bigint arrives as a string
}

const toRow = ({ size, ...rest }: StoredRow): FileRow => ({ ...rest, size: Number(size) });

const COLUMNS = 'id, name, size, content_type, kind, sha256, status, attempts, result, error, uploaded_at, processed_at, has_thumbnail';

export class FileRepository {
  constructor(
    private readonly sql: Sql,
    private readonly model: ModelStatic<Model>,
  ) {}

  /** The upload hot path: one round trip. */
  async insert(file: NewFile): Promise<FileRow> {
    const rows = await this.sql<StoredRow>(
      `INSERT INTO files (id, name, size, content_type, kind, sha256) VALUES ($1, $2, $3, $4, $5, $6) RETURNING ${COLUMNS}`,
      [file.id, file.name, file.size, file.content_type, file.kind, file.sha256],
    );
    return toRow(rows[0]!);
  }

  async findById(id: string): Promise<FileRow | null> {
    const found = await this.model.findByPk(id, { raw: true, attributes: COLUMNS.split(', ') });
    return found ? toRow(found as unknown as StoredRow) : null;
  }

  /** Newest first, keyset-paginated: the cost of a page does not depend on its position. */
  async list(query: ListQuery): Promise<FileRow[]> {
    const where: string[] = [];
    const values: unknown[] = [];
    const bind = (value: unknown) => `$${values.push(value)}`;
    if (query.status) where.push(`status = ${bind(query.status)}`);
    if (query.kind) where.push(`kind = ${bind(query.kind)}`);
    if (query.processed !== undefined) where.push(query.processed ? "status = 'processed'" : "status <> 'processed'");
    if (query.after) where.push(`(uploaded_at, id) < (${bind(query.after.uploadedAt)}, ${bind(query.after.id)})`);
    const rows = await this.sql<StoredRow>(
      `SELECT ${COLUMNS} FROM files ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
       ORDER BY uploaded_at DESC, id DESC LIMIT ${bind(query.limit)}`,
      values,
    );
    return rows.map(toRow);
  }

  async remove(id: string): Promise<FileRow | null> {
    const rows = await this.sql<StoredRow>(`DELETE FROM files WHERE id = $1 RETURNING ${COLUMNS}`, [id]);
    return rows[0] ? toRow(rows[0]) : null;
  }

  /**
   * queued (or processing, when a job is re-delivered) → processing, counting the attempt.
   * Null when the row is gone or already finished: the job then has nothing to do.
   */
  async startProcessing(id: string): Promise<FileRow | null> {
    const rows = await this.sql<StoredRow>(
      `UPDATE files SET status = 'processing', attempts = attempts + 1, updated_at = now()
       WHERE id = $1 AND status IN ('queued', 'processing') RETURNING ${COLUMNS}`,
      [id],
    );
    return rows[0] ? toRow(rows[0]) : null;
  }

  /** processing → processed, only for the attempt that is still current; `thumbnail` says one was stored. */
  async finishProcessing(id: string, attempt: number, result: FileResult, thumbnail = false): Promise<boolean> {
    const rows = await this.sql(
      `UPDATE files SET status = 'processed', result = $3, error = NULL, has_thumbnail = $4, processed_at = now(), updated_at = now()
       WHERE id = $1 AND status = 'processing' AND attempts = $2 RETURNING id`,
      [id, attempt, JSON.stringify(result), thumbnail],
    );
    return rows.length === 1;
  }

  /** processing → failed, only for the attempt that is still current. */
  async failProcessing(id: string, attempt: number, error: FileError): Promise<boolean> {
    const rows = await this.sql(
      `UPDATE files SET status = 'failed', error = $3, result = NULL, has_thumbnail = false, updated_at = now()
       WHERE id = $1 AND status = 'processing' AND attempts = $2 RETURNING id`,
      [id, attempt, JSON.stringify(error)],
    );
    return rows.length === 1;
  }

  /**
   * Back to queued with a fresh attempt count, unless a worker is processing it right now
   * (then the result is `busy` and nothing changes).
   */
  async requeue(id: string): Promise<{ row: FileRow } | { busy: true } | null> {
    const rows = await this.sql<StoredRow>(
      `UPDATE files SET status = 'queued', attempts = 0, result = NULL, error = NULL, has_thumbnail = false, updated_at = now()
       WHERE id = $1 AND status <> 'processing' RETURNING ${COLUMNS}`,
      [id],
    );
    if (rows[0]) return { row: toRow(rows[0]) };
    return (await this.findById(id)) ? { busy: true } : null;
  }
}
