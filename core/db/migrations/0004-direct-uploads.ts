import type { Migration } from './index.js';

// Direct uploads announced (POST /uploads/) and not completed yet: the client is putting the bytes straight
// into the bucket under the id. The row keeps the reconciler from taking that object for an orphan, and goes
// in the statement that inserts the File, or when the upload expires.
export const createDirectUploads: Migration = {
  name: '0004-direct-uploads',
  async up({ context: sql }) {
    await sql(`
      CREATE TABLE direct_uploads (
        id         uuid PRIMARY KEY,
        name       text NOT NULL,
        size       bigint NOT NULL,
        sha256     char(64) NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        expires_at timestamptz(3) NOT NULL
      )`);
    await sql('CREATE INDEX direct_uploads_expires_at ON direct_uploads (expires_at)');
  },
  async down({ context: sql }) {
    await sql('DROP TABLE direct_uploads');
  },
};
