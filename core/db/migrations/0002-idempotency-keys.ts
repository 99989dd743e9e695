import type { Migration } from './index.js';

// Idempotency keys live beside the files they created, so a replay works whatever state Redis is in,
// and the key is recorded in the same statement that inserts the file.
export const createIdempotencyKeys: Migration = {
  name: '0002-idempotency-keys',
  async up({ context: sql }) {
    await sql(`
      CREATE TABLE idempotency_keys (
        scope        text NOT NULL,
        key          text NOT NULL,
        file_id      uuid,
        sha256       char(64),
        created_at   timestamptz(3) NOT NULL DEFAULT now(),
        completed_at timestamptz(3),
        PRIMARY KEY (scope, key)
      )`);
    await sql('CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at)');
  },
  async down({ context: sql }) {
    await sql('DROP TABLE idempotency_keys');
  },
};
