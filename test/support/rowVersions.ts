// Every version of a files row that a statement wrote, as a trigger in the test's own database logs it (the log
// row is written in the same transaction, so a rolled-back write leaves none). From the log: how often each row
// was written, and what each committed transaction left of it, which is all any reader could ever see.
import { randomBytes } from 'node:crypto';

/** Runs one statement and returns its rows (support/db.ts's sql, or a stack's). */
type Query = (text: string, values?: unknown[]) => Promise<unknown[]>;

export interface FileVersion {
  /** Order of the writes. */
  seq: number;
  /** The writing transaction. */
  tx: string;
  op: 'INSERT' | 'UPDATE';
  id: string;
  status: string;
  attempts: number;
  has_result: boolean;
  has_error: boolean;
  has_processed_at: boolean;
}

export interface FileVersionLog {
  /** Every write of a row in order, an UPDATE that changed nothing included; of the given rows, or of all. */
  writes(ids?: string[]): Promise<FileVersion[]>;
  /** The version each committed transaction left of each row it wrote. */
  committed(ids?: string[]): Promise<FileVersion[]>;
  /** Drops the trigger and its log. */
  remove(): Promise<void>;
}

/** Installs the logging trigger on `files` through `sql` (the database of the run, or of a private stack). */
export async function logFileVersions(sql: Query): Promise<FileVersionLog> {
  const name = `test_file_versions_${randomBytes(4).toString('hex')}`;
  await sql(`CREATE TABLE ${name} (
    seq bigserial PRIMARY KEY,
    tx bigint NOT NULL DEFAULT txid_current(),
    op text NOT NULL,
    id uuid NOT NULL,
    status text NOT NULL,
    attempts int NOT NULL,
    has_result boolean NOT NULL,
    has_error boolean NOT NULL,
    has_processed_at boolean NOT NULL
  )`);
  await sql(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO ${name} (op, id, status, attempts, has_result, has_error, has_processed_at)
        VALUES (TG_OP, NEW.id, NEW.status, NEW.attempts, NEW.result IS NOT NULL, NEW.error IS NOT NULL,
                NEW.processed_at IS NOT NULL);
      RETURN NULL;
    END $$`);
  await sql(`CREATE TRIGGER ${name} AFTER INSERT OR UPDATE ON files FOR EACH ROW EXECUTE FUNCTION ${name}()`);

  const columns = 'seq::int AS seq, tx::text AS tx, op, id, status, attempts, has_result, has_error, has_processed_at';
  const only = (ids?: string[]) =>
    ids ? { where: 'WHERE id = ANY($1::uuid[])', values: [ids] } : { where: '', values: [] };
  return {
    async writes(ids) {
      const { where, values } = only(ids);
      return (await sql(`SELECT ${columns} FROM ${name} ${where} ORDER BY seq`, values)) as FileVersion[];
    },
    async committed(ids) {
      const { where, values } = only(ids);
      return (await sql(
        `SELECT * FROM (SELECT DISTINCT ON (tx, id) ${columns} FROM ${name} ${where} ORDER BY tx, id, seq DESC) AS last
         ORDER BY seq`,
        values,
      )) as FileVersion[];
    },
    async remove() {
      await sql(`DROP TRIGGER IF EXISTS ${name} ON files`);
      await sql(`DROP FUNCTION IF EXISTS ${name}()`);
      await sql(`DROP TABLE IF EXISTS ${name}`);
    },
  };
}

/**
 * What is wrong with a version a reader could see: a result beside a status that is not final or a failure, a
 * processed file without its result or finish time, a failure without its error. Null when it is whole.
 */
export function brokenVersion(version: FileVersion): string | null {
  const { status, has_result, has_error, has_processed_at } = version;
  if (status === 'processed' && !has_result) return 'processed without a result';
  if (status === 'processed' && !has_processed_at) return 'processed without processed_at';
  if (status === 'processed' && has_error) return 'processed with an error';
  if (status !== 'processed' && has_result) return `${status} with a result`;
  if (status === 'failed' && !has_error) return 'failed without an error';
  return null;
}
