// Webhook deliveries delivered or failed more than WEBHOOK_RETENTION_MS ago, then the events of that age, fanned out,
// that no delivery refers to any more (a pending delivery keeps its event, however old).
import { catchUpStatements, housekeeping, removeInBatches, REMOVE_BATCH, type SweepFactory } from './sweep.js';

export const webhookRetention: SweepFactory = ({ db, config }) => ({
  name: 'webhook_retention',
  intervalMs: housekeeping(config),
  async run() {
    const before = new Date(Date.now() - config.webhookRetentionMs);
    const removed = await removeInBatches(
      (limit) => db.webhooks.prune(before, limit),
      REMOVE_BATCH,
      catchUpStatements(config),
    );
    return { deliveries_removed: removed.deliveries, events_removed: removed.events };
  },
});
