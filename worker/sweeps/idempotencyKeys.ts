// Idempotency keys are forgotten a day after they were claimed.
import { catchUpStatements, housekeeping, removeInBatches, REMOVE_BATCH, type SweepFactory } from './sweep.js';

export const idempotencyKeys: SweepFactory = ({ db, config }) => ({
  name: 'idempotency_keys',
  intervalMs: housekeeping(config),
  run: () =>
    removeInBatches(
      async (limit) => ({ removed: await db.idempotencyKeys.removeExpired(limit) }),
      REMOVE_BATCH,
      catchUpStatements(config),
    ),
});
