import type { Migration } from './index.js';

// Bulk reprocess and GET /files/ filter failed files by `error.code`, walking (uploaded_at, id). Without this
// index a page reads and sorts every failed row after the cursor, as the status index cannot see the code: 55 ms
// for a page of 500 among 20,000 failed rows of 1M (0.7 ms with it), growing with the failed set. Partial: only
// failed rows have entries, and `status` is indexed already (no HOT update is lost), so a file that never fails
// costs nothing more. Built CONCURRENTLY so uploads go on meanwhile; an attempt that died leaves an invalid index,
// dropped first.
export const addFailedErrorCodeIndex: Migration = {
  name: '0006-failed-error-code',
  async up({ context: sql }) {
    await sql('DROP INDEX CONCURRENTLY IF EXISTS files_failed_error_code');
    await sql(
      `CREATE INDEX CONCURRENTLY files_failed_error_code ON files ((error->>'code'), uploaded_at DESC, id DESC)
       WHERE status = 'failed'`,
    );
  },
  async down({ context: sql }) {
    await sql('DROP INDEX CONCURRENTLY IF EXISTS files_failed_error_code');
  },
};
