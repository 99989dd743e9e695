// Direct uploads that were announced and not completed yet (POST /uploads/ until /complete): the client
// puts the bytes straight into the bucket under the upload's id, which becomes the File's id.
import { insertRemembered, type IdempotencyScope } from './idempotency.js';
import type { Sql } from './files.js';

export interface DirectUpload {
  id: string;
  name: string;
  size: number;
  sha256: string;
  expires_at: Date;
}

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
      `SELECT ${COLUMNS} FROM direct_uploads WHERE id = $1 AND expires_at > now()`,
      [id],
    );
    return rows[0] ? toUpload(rows[0]) : null;
  }

  /** Expired uploads, oldest first (the reconciler removes their objects, then them). */
  async expired(limit: number): Promise<string[]> {
    const rows = await this.sql<{ id: string }>(
      'SELECT id FROM direct_uploads WHERE expires_at <= now() ORDER BY expires_at LIMIT $1',
      [limit],
    );
    return rows.map((row) => row.id);
  }

  /** Forgets an expired upload; false when it was completed (or removed) meanwhile. */
  async removeExpired(id: string): Promise<boolean> {
    const rows = await this.sql('DELETE FROM direct_uploads WHERE id = $1 AND expires_at <= now() RETURNING 1', [id]);
    return rows.length > 0;
  }

  /** Which of these ids are announced uploads (whose objects are not orphans, though they have no File). */
  async pending(ids: string[]): Promise<Set<string>> {
    if (!ids.length) return new Set();
    const rows = await this.sql<{ id: string }>('SELECT id FROM direct_uploads WHERE id = ANY($1::uuid[])', [ids]);
    return new Set(rows.map((row) => row.id));
  }
}
