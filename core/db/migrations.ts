// Versioned schema migrations (umzug), applied in list order and recorded in `schema_migrations`.
// Migrations are plain SQL: they describe the schema as it was at that version, never the current model.
import { Sequelize } from 'sequelize';
import { SequelizeStorage, Umzug, type MigrationParams } from 'umzug';
import { createFiles } from './migrations/0001-create-files.js';

export type RunSql = (sql: string) => Promise<unknown>;

export interface Migration {
  name: string;
  up(params: MigrationParams<RunSql>): Promise<void>;
  down(params: MigrationParams<RunSql>): Promise<void>;
}

/** Every migration, oldest first. A new one is appended here. */
export const MIGRATIONS: Migration[] = [createFiles];

// Any constant works; it only has to be the same for every process that migrates this database.
const MIGRATION_LOCK = 0x66696c65;

function umzugFor(sequelize: Sequelize): Umzug<RunSql> {
  return new Umzug<RunSql>({
    migrations: MIGRATIONS,
    // A function here is a context factory, so the runner is returned from one.
    context: () => (sql: string) => sequelize.query(sql),
    storage: new SequelizeStorage({ sequelize, tableName: 'schema_migrations' }),
    logger: undefined,
  });
}

/** Applies pending migrations; safe to run from several pods at once (an advisory lock serializes them). */
export async function migrateUp(sequelize: Sequelize): Promise<string[]> {
  return withMigrationLock(sequelize, async () => (await umzugFor(sequelize).up()).map((m) => m.name));
}

/** Names of the migrations not applied yet. */
export async function pendingMigrations(sequelize: Sequelize): Promise<string[]> {
  return (await umzugFor(sequelize).pending()).map((m) => m.name);
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
