import type { Migration } from './index.js';

// Keyset pagination walks (uploaded_at, id) newest first; the filtered variants keep filtered walks
// from scanning past rows that do not match. Timestamps are stored at millisecond precision so a
// cursor that carries the serialized timestamp matches the stored value exactly.
export const createFiles: Migration = {
  name: '0001-create-files',
  async up({ context: sql }) {
    await sql(`
      CREATE TABLE files (
        id           uuid PRIMARY KEY,
        name         text NOT NULL,
        size         bigint NOT NULL CHECK (size >= 0),
        content_type text NOT NULL,
        kind         text NOT NULL,
        sha256       char(64) NOT NULL,
        status       text NOT NULL DEFAULT 'queued'
                     CHECK (status IN ('queued', 'processing', 'processed', 'failed')),
        attempts     integer NOT NULL DEFAULT 0,
        result       jsonb,
        error        jsonb,
        uploaded_at  timestamptz(3) NOT NULL DEFAULT now(),
        processed_at timestamptz(3),
        updated_at   timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await sql('CREATE INDEX files_uploaded_at_id ON files (uploaded_at DESC, id DESC)');
    await sql('CREATE INDEX files_status_uploaded_at_id ON files (status, uploaded_at DESC, id DESC)');
    await sql('CREATE INDEX files_kind_uploaded_at_id ON files (kind, uploaded_at DESC, id DESC)');
  },
  async down({ context: sql }) {
    await sql('DROP TABLE files');
  },
};
