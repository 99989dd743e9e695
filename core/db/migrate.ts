// `npm run migrate`: creates the database when it is missing, then applies pending migrations.
import { addressOf, loadConfig } from '../config.js';
import { runMain, StartupError } from '../runtime.js';
import { ensureDatabaseExists, openDatabase } from './index.js';

runMain(async () => {
  const config = loadConfig('migrate');
  try {
    if (await ensureDatabaseExists(config.databaseUrl)) process.stdout.write('created the database\n');
  } catch (err) {
    const code = (err as { code?: string }).code ?? (err as Error).message;
    throw new StartupError(
      `PostgreSQL at ${addressOf(config.databaseUrl)} does not answer or refuses to create the database (${code}): start it, or set DATABASE_URL.`,
    );
  }
  const db = openDatabase({ url: config.databaseUrl, poolMax: 2 });
  try {
    const applied = await db.migrate();
    process.stdout.write(applied.length ? `applied ${applied.join(', ')}\n` : 'the schema is up to date\n');
  } finally {
    await db.close();
  }
});
