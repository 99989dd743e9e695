// Processing Files whose job is gone (their worker died and Redis lost the job) go back in their kind's queue.
import { BATCH, everyTick, staleBefore, withoutJob, type SweepFactory } from './sweep.js';

export const requeueLost: SweepFactory = ({ db, queue, config }) => ({
  name: 'requeue_lost',
  intervalMs: everyTick(config),
  async run() {
    const rows = await db.files.staleProcessing(staleBefore(config), BATCH);
    let requeued = 0;
    for (const row of await withoutJob(queue, rows)) if (await queue.enqueue(row.id, row.kind)) requeued++;
    return { requeued };
  },
});
