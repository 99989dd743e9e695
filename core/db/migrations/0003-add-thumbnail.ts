import type { Migration } from './index.js';

// Whether the last result came with a thumbnail variant in the blob store (the File's `thumbnail` URL).
// A constant default makes the ALTER a catalogue change in PostgreSQL 11+, not a table rewrite.
export const addThumbnail: Migration = {
  name: '0003-add-thumbnail',
  async up({ context: sql }) {
    await sql('ALTER TABLE files ADD COLUMN has_thumbnail boolean NOT NULL DEFAULT false');
  },
  async down({ context: sql }) {
    await sql('ALTER TABLE files DROP COLUMN has_thumbnail');
  },
};
