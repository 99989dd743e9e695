// Applies and reverts migrations with umzug. Loaded only by `npm run migrate` and tests: umzug brings
// a command-line toolkit that has no place in the API's and workers' memory.
import { setTimeout as sleep } from 'node:timers/promises';
import { QueryTypes, type Sequelize } from 'sequelize';
import { SequelizeStorage, Umzug } from 'umzug';
import { MIGRATIONS, MIGRATIONS_TABLE, type RunSql } from './migrations/index.js';

// Any constant works; it only has to be the same for every process that migrates this database.
const MIGRATION_LOCK = 0x66696c65;

function umzugFor(sequelize: Sequelize): Umzug<RunSql> {
  return new Umzug<RunSql>({
    migrations: MIGRATIONS,
    // A function here is a context factory, so the runner is returned from one.
    context: () => (sql: string) => sequelize.query(sql),
    storage: new SequelizeStorage({ sequelize, tableName: MIGRATIONS_TABLE }),
    logger: undefined,
  });
}

/** Applies pending migrations; safe to run from several pods at once (an advisory lock serializes them). */
export async function migrateUp(sequelize: Sequelize): Promise<string[]> {
  return withMigrationLock(sequelize, async () => (await umzugFor(sequelize).up()).map((m) => m.name));
}

/** Reverts every migration (tests and local resets). */
export async function migrateDownAll(sequelize: Sequelize): Promise<string[]> {
  return withMigrationLock(sequelize, async () => (await umzugFor(sequelize).down({ to: 0 })).map((m) => m.name));
}

/** How long a migrating process waits between two tries of the lock another one holds. */
const LOCK_RETRY_MS = 200;

async function withMigrationLock<T>(sequelize: Sequelize, work: () => Promise<T>): Promise<T> {
  // The lock lives in one transaction (one connection) for the whole run while the migrations use
  // other connections of the pool, so a migrating pool needs at least two. The others try it and wait
  // outside any statement: a process blocked in pg_advisory_xact_lock holds a snapshot, and CREATE INDEX
  // CONCURRENTLY in the holder's migrations waits for every older snapshot to end, which would never happen.
  for (;;) {
    const outcome = await sequelize.transaction(async (transaction) => {
      const [row] = await sequelize.query<{ locked: boolean }>(
        `SELECT pg_try_advisory_xact_lock(${MIGRATION_LOCK}) AS locked`,
        { transaction, type: QueryTypes.SELECT },
      );
      return row?.locked ? { value: await work() } : undefined;
    });
    if (outcome) return outcome.value;
    await sleep(LOCK_RETRY_MS);
  }
}
