import type { Migration } from './index.js';

// Whether the last result came with a preview variant in the blob store (the File's `preview` URL). A constant
// default is kept in the catalogue since PostgreSQL 11: no table rewrite, however many files there are.
export const addPreview: Migration = {
  name: '0010-add-preview',
  async up({ context: sql }) {
    await sql('ALTER TABLE files ADD COLUMN has_preview boolean NOT NULL DEFAULT false');
  },
  async down({ context: sql }) {
    await sql('ALTER TABLE files DROP COLUMN has_preview');
  },
};
