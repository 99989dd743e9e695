// Applies and reverts migrations with umzug. Loaded only by `npm run migrate` and tests: umzug brings
// a command-line toolkit that has no place in the API's and workers' memory.
import type { Sequelize } from 'sequelize';
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

async function withMigrationLock<T>(sequelize: Sequelize, work: () => Promise<T>): Promise<T> {
  // The lock lives in one transaction (one connection) for the whole run while the migrations use
  // other connections of the pool, so a migrating pool needs at least two.
  return sequelize.transaction(async (transaction) => {
    await sequelize.query(`SELECT pg_advisory_xact_lock(${MIGRATION_LOCK})`, { transaction });
    return work();
  });
}
