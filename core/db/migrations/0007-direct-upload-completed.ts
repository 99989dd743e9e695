import type { Migration } from './index.js';

// A completed direct upload is kept (marked completed) until its presigned PUT has expired, instead of going in
// the statement that inserts its File: a File deleted meanwhile must still be known as one whose PUT can be
// replayed, so that its key keeps barring the PUT and the reconciler clears it once the URL is dead.
// A nullable column without a default is a catalogue change, not a table rewrite.
export const addDirectUploadCompleted: Migration = {
  name: '0007-direct-upload-completed',
  async up({ context: sql }) {
    await sql('ALTER TABLE direct_uploads ADD COLUMN completed_at timestamptz(3)');
  },
  async down({ context: sql }) {
    await sql('DELETE FROM direct_uploads WHERE completed_at IS NOT NULL');
    await sql('ALTER TABLE direct_uploads DROP COLUMN completed_at');
  },
};
