import pg from 'pg';
import { TEST_ENV } from './env.js';

/** Runs one statement against this run's database, outside the service (to arrange or inspect state). */
export async function sql<T = Record<string, unknown>>(text: string, values: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: TEST_ENV.databaseUrl });
  await client.connect();
  try {
    return (await client.query(text, values)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Empties the files table, for suites that assert on the whole list. */
export const truncateFiles = () => sql('TRUNCATE files');
