// Idempotency keys of uploads: a client that retries with the same key gets the first file back.
// A key is claimed before the body is read, and completed by the statement that inserts the file.
import type { Sql } from './files.js';

/** How long a completed key is remembered (the contract promises 24 hours). */
const IDEMPOTENCY_TTL_HOURS = 24;

export type Claim = { state: 'claimed' } | { state: 'in_progress' } | { state: 'done'; fileId: string; sha256: string };

export interface IdempotencyScope {
  /** Who sent it: keys of different clients never collide. */
  scope: string;
  key: string;
}

/**
 * Runs `insert` (an INSERT ... RETURNING over `values`); with a key, the same statement completes the key
 * with the inserted id and sha256 (the parameters numbered `id` and `sha256`), so a key never points nowhere.
 */
export function insertRemembered<T>(
  sql: Sql,
  insert: string,
  values: unknown[],
  idempotency: IdempotencyScope | undefined,
  refs: { id: number; sha256: number },
): Promise<T[]> {
  if (!idempotency) return sql<T>(insert, values);
  const [scope, key] = [values.length + 1, values.length + 2];
  return sql<T>(
    `WITH inserted AS (${insert}),
          remembered AS (UPDATE idempotency_keys SET file_id = $${refs.id}, sha256 = $${refs.sha256}, completed_at = now()
                         WHERE scope = $${scope} AND key = $${key})
     SELECT * FROM inserted`,
    [...values, idempotency.scope, idempotency.key],
  );
}

/**
 * insertRemembered for many rows: `insert` inserts them from arrays (INSERT ... SELECT FROM unnest(...) RETURNING),
 * and the same statement completes the key of each row that has one (`idempotency[n]` for the n-th row) with that
 * row's id and sha256 (the array parameters numbered `id` and `sha256`).
 */
export function insertManyRemembered<T>(
  sql: Sql,
  insert: string,
  values: unknown[],
  idempotency: Array<IdempotencyScope | undefined>,
  refs: { id: number; sha256: number },
): Promise<T[]> {
  if (idempotency.every((scope) => !scope)) return sql<T>(insert, values);
  const [scopes, keys] = [values.length + 1, values.length + 2];
  return sql<T>(
    `WITH inserted AS (${insert}),
          remembered AS (UPDATE idempotency_keys AS k SET file_id = r.id, sha256 = r.sha256, completed_at = now()
                         FROM unnest($${refs.id}::uuid[], $${refs.sha256}::text[], $${scopes}::text[], $${keys}::text[])
                           AS r(id, sha256, scope, key)
                         WHERE k.scope = r.scope AND k.key = r.key)
     SELECT * FROM inserted`,
    [...values, idempotency.map((scope) => scope?.scope ?? null), idempotency.map((scope) => scope?.key ?? null)],
  );
}

export class IdempotencyKeys {
  constructor(private readonly sql: Sql) {}

  /**
   * Claims the key for a new request. An expired key, or one whose request was abandoned (older than
   * `abandonAfterMs` and never completed, e.g. its pod died), is claimed afresh.
   */
  async claim({ scope, key }: IdempotencyScope, abandonAfterMs: number): Promise<Claim> {
    for (;;) {
      const claimed = await this.sql(
        `INSERT INTO idempotency_keys (scope, key) VALUES ($1, $2)
         ON CONFLICT (scope, key) DO UPDATE SET created_at = now(), completed_at = NULL, file_id = NULL, sha256 = NULL
         WHERE idempotency_keys.created_at < now() - make_interval(hours => ${IDEMPOTENCY_TTL_HOURS})
            OR (idempotency_keys.completed_at IS NULL AND idempotency_keys.created_at < now() - make_interval(secs => $3::float8 / 1000))
         RETURNING 1`,
        [scope, key, abandonAfterMs],
      );
      if (claimed.length) return { state: 'claimed' };
      const [row] = await this.sql<{ file_id: string | null; sha256: string | null }>(
        'SELECT file_id, sha256 FROM idempotency_keys WHERE scope = $1 AND key = $2',
        [scope, key],
      );
      // Released between our two statements: try to claim it again.
      if (!row) continue;
      return row.file_id && row.sha256
        ? { state: 'done', fileId: row.file_id, sha256: row.sha256 }
        : { state: 'in_progress' };
    }
  }

  /** Gives up a claim whose request failed, so the client may retry at once. */
  async release({ scope, key }: IdempotencyScope): Promise<void> {
    await this.sql('DELETE FROM idempotency_keys WHERE scope = $1 AND key = $2 AND completed_at IS NULL', [scope, key]);
  }

  /** Forgets keys older than the promise; returns how many. */
  async removeExpired(limit: number): Promise<number> {
    const rows = await this.sql(
      `DELETE FROM idempotency_keys WHERE ctid IN (
         SELECT ctid FROM idempotency_keys WHERE created_at < now() - make_interval(hours => ${IDEMPOTENCY_TTL_HOURS}) LIMIT $1
       ) RETURNING 1`,
      [limit],
    );
    return rows.length;
  }
}
