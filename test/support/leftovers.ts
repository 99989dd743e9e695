// What a failed request may not leave behind: rows, blobs, temporary files.
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { sql } from './db.js';
import { TEST_ENV } from './env.js';

/** Every file under a blob directory (blobs and temporary files). */
export async function storedFiles(root = TEST_ENV.storageDir): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else found.push(full);
    }
  };
  await walk(root);
  return found.sort();
}

export const rowCount = async (): Promise<number> =>
  Number((await sql<{ count: string }>('SELECT count(*) FROM files'))[0]!.count);

/** A snapshot of rows and stored files; `unchanged()` tells whether anything was added since. */
export async function snapshot(
  root = TEST_ENV.storageDir,
): Promise<{ unchanged(): Promise<{ rows: number; files: string[] }> }> {
  const rows = await rowCount();
  const files = new Set(await storedFiles(root));
  return {
    async unchanged() {
      return { rows: (await rowCount()) - rows, files: (await storedFiles(root)).filter((file) => !files.has(file)) };
    },
  };
}
