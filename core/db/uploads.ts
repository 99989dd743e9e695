// Direct uploads (POST /uploads/ until /complete, and after): the client puts the bytes straight into the bucket
// under the upload's id, which becomes the File's id. An upload is remembered until its presigned PUT is dead
// (completed ones too), because that PUT cannot be revoked: while it may be replayed, the object at its key
// belongs to the upload, and the reconciler removes what a File does not own when it forgets the upload.
import { insertRemembered, type IdempotencyScope } from './idempotency.js';
import type { Sql } from './files.js';

export interface DirectUpload {
  id: string;
  name: string;
  size: number;
  sha256: string;
  expires_at: Date;
}

/**
 * How long past its expiry an upload is remembered: the bucket checks a presigned URL's expiry by its own clock,
 * which may run behind ours (15 minutes is the skew S3 allows a signed request).
 */
export const PRESIGNED_CLOCK_SKEW_MS = 15 * 60_000;

type StoredUpload = Omit<DirectUpload, 'size'> & { size: string | number };
const toUpload = ({ size, ...rest }: StoredUpload): DirectUpload => ({ ...rest, size: Number(size) });
const COLUMNS = 'id, name, size, sha256, expires_at';

export class DirectUploads {
  constructor(private readonly sql: Sql) {}

  /** Records an announced upload; with an idempotency key, the same statement completes the key. */
  async create(upload: DirectUpload, idempotency?: IdempotencyScope): Promise<DirectUpload> {
    const values = [upload.id, upload.name, upload.size, upload.sha256, upload.expires_at];
    const insert = `INSERT INTO direct_uploads (id, name, size, sha256, expires_at) VALUES ($1, $2, $3, $4, $5) RETURNING ${COLUMNS}`;
    const rows = await insertRemembered<StoredUpload>(this.sql, insert, values, idempotency, { id: 1, sha256: 4 });
    return toUpload(rows[0]!);
  }

  /** The upload, unless it is unknown, completed or expired. */
  async findLive(id: string): Promise<DirectUpload | null> {
    const rows = await this.sql<StoredUpload>(
      `SELECT ${COLUMNS} FROM direct_uploads WHERE id = $1 AND expires_at > now() AND completed_at IS NULL`,
      [id],
    );
    return rows[0] ? toUpload(rows[0]) : null;
  }

  /** Whether a presigned PUT to this id's key may still be used: an upload of it is remembered. */
  async hasLivePut(id: string): Promise<boolean> {
    return (await this.sql('SELECT 1 FROM direct_uploads WHERE id = $1', [id])).length > 0;
  }

  /**
   * Forgets up to `limit` uploads whose presigned PUT is dead (expired PRESIGNED_CLOCK_SKEW_MS ago), oldest first;
   * answers how many, and the ids whose object no File owns (never completed, or its File deleted since): theirs to
   * remove.
   */
  async forgetExpired(limit: number): Promise<{ forgotten: number; unowned: string[] }> {
    const rows = await this.sql<{ id: string; owned: boolean }>(
      `WITH forgotten AS (
         DELETE FROM direct_uploads WHERE id IN (
           SELECT id FROM direct_uploads WHERE expires_at <= now() - $1 * interval '1 millisecond'
           ORDER BY expires_at LIMIT $2)
         RETURNING id)
       SELECT id, EXISTS (SELECT 1 FROM files WHERE files.id = forgotten.id) AS owned FROM forgotten`,
      [PRESIGNED_CLOCK_SKEW_MS, limit],
    );
    return { forgotten: rows.length, unowned: rows.filter((row) => !row.owned).map((row) => row.id) };
  }

  /** Which of these ids belong to a remembered upload (their objects are the upload's, though they have no File). */
  async remembered(ids: string[]): Promise<Set<string>> {
    if (!ids.length) return new Set();
    const rows = await this.sql<{ id: string }>('SELECT id FROM direct_uploads WHERE id = ANY($1::uuid[])', [ids]);
    return new Set(rows.map((row) => row.id));
  }
}
