// What a reconciler sweep is: one kind of repair or housekeeping, with its own interval and its own counts, run by
// the reconciler's leader (worker/reconciler.ts). Every sweep is idempotent (two leaders at once, while Redis is
// away, only waste work) and bounded per run.
import type { Config } from '../../core/config.js';
import type { Database, StaleRow } from '../../core/db/index.js';
import type { FileQueue } from '../../core/queue/index.js';
import type { BlobStore } from '../../core/storage/index.js';
import type { ResumableStore } from '../../core/tus/stores.js';

export type SweepConfig = Pick<
  Config,
  'reconcileIntervalMs' | 'requeueAfterMs' | 'orphanAfterMs' | 'webhookRetentionMs' | 'tusExpireAfterMs'
>;

/** What the sweeps work on: the process's own adapters. */
export interface SweepDeps {
  db: Database;
  queue: FileQueue;
  storage: BlobStore;
  config: SweepConfig;
  /** Where unfinished resumable uploads live, to remove the expired ones. */
  resumable?: ResumableStore;
  /** Keys the orphan sweep lists a run: ORPHAN_KEYS_PER_RUN unless a test makes the store span several runs. */
  orphanKeysPerRun?: number;
}

/** What one run did: how many items, by outcome (`requeued`, `removed`, ...), zeros included. */
export type SweepCounts = Readonly<Record<string, number>>;

export interface Sweep {
  /** Its name in logs and in the metrics' `sweep` label: what it sweeps. */
  readonly name: string;
  /** The least time between the starts of two of its runs. */
  readonly intervalMs: number;
  run(): Promise<SweepCounts>;
}

/** The sweep for these deps, or null where there is nothing of its kind (a store without direct uploads). */
export type SweepFactory = (deps: SweepDeps) => Sweep | null;

/** Rows one statement reads or removes, and ids one lookup takes. */
export const BATCH = 500;
/** Rows one housekeeping statement removes. */
export const REMOVE_BATCH = 10 * BATCH;

/** Repairs run at every tick: what they fix holds a File up, and they cost a query or two when nothing is wrong. */
export const everyTick = (config: SweepConfig): number => config.reconcileIntervalMs;

/**
 * Housekeeping runs every tenth tick (5 minutes by default), at most an hour apart: what it removes is hours or days
 * old (ORPHAN_AFTER_MS, a day, WEBHOOK_RETENTION_MS), so minutes late cost nothing, and an idle store or table is
 * asked a tenth as often.
 */
export const housekeeping = (config: SweepConfig): number =>
  Math.max(config.reconcileIntervalMs, Math.min(10 * config.reconcileIntervalMs, 3_600_000));

/**
 * Statements a housekeeping run may make one after the other while each comes back full: one per tick it stands
 * for, so it removes as much an hour as a sweep at every tick would.
 */
export const catchUpStatements = (config: SweepConfig): number =>
  Math.ceil(housekeeping(config) / config.reconcileIntervalMs);

/**
 * Runs `remove` (which removes up to `limit` rows and answers how many of each) again while some count came back
 * full, at most `statements` times; answers the totals.
 */
export async function removeInBatches<K extends string>(
  remove: (limit: number) => Promise<Record<K, number>>,
  limit: number,
  statements: number,
): Promise<Record<K, number>> {
  let totals: Record<K, number> | undefined;
  for (let statement = 0; statement < statements; statement++) {
    const removed = await remove(limit);
    const entries = Object.entries(removed) as Array<[K, number]>;
    totals = Object.fromEntries(entries.map(([key, count]) => [key, (totals?.[key] ?? 0) + count])) as Record<
      K,
      number
    >;
    if (!entries.some(([, count]) => count >= limit)) break;
  }
  return totals!;
}

/** The age past which an untouched `queued` or `processing` row is looked at. */
export const staleBefore = (config: SweepConfig): Date => new Date(Date.now() - config.requeueAfterMs);

/** The rows whose job is not in their queue (one HMGET per queue). */
export async function withoutJob(queue: FileQueue, rows: StaleRow[]): Promise<StaleRow[]> {
  const exists = await queue.jobsExist(rows);
  return rows.filter((_, index) => !exists[index]);
}
