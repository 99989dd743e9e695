import type { Migration } from './index.js';

// The malware scanner's verdict on the File's bytes (`scan`: status, signature, engine, scanned_at), or null while
// they were not scanned. No default: a catalogue change, not a table rewrite.
export const addScan: Migration = {
  name: '0009-add-scan',
  async up({ context: sql }) {
    await sql('ALTER TABLE files ADD COLUMN scan jsonb');
  },
  async down({ context: sql }) {
    await sql('ALTER TABLE files DROP COLUMN scan');
  },
};
