// Queued Files whose job is missing (Redis was down at upload time, or lost its data) go back in their kind's
// queue, or fail with blob_missing when their bytes are gone.
import type { StalePosition } from '../../core/db/index.js';
import { BATCH, everyTick, staleBefore, withoutJob, type SweepFactory } from './sweep.js';

export const requeueQueued: SweepFactory = ({ db, queue, storage, config }) => {
  /** Where the walk resumes: a long backlog is covered over several runs instead of re-checking its head. */
  let position: StalePosition | undefined;
  return {
    name: 'requeue_queued',
    intervalMs: everyTick(config),
    async run() {
      const rows = await db.files.staleQueued(staleBefore(config), BATCH, position);
      // Resume after the last row next time; start over once the walk reached the end.
      position = rows.length === BATCH ? rows.at(-1) : undefined;
      let requeued = 0;
      let failed = 0;
      for (const row of await withoutJob(queue, rows)) {
        if ((await storage.writtenAt(row.id)) === null) {
          const error = { code: 'blob_missing', message: 'The stored bytes of this file are missing.' } as const;
          if (await db.files.failQueued(row.id, error)) failed++;
        } else if (await queue.enqueue(row.id, row.kind)) {
          requeued++;
        }
      }
      return { requeued, failed };
    },
  };
};
