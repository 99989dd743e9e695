import { DELIVERY_PER_ENDPOINT, fileEvents } from './fileEvents.js';
import type { Migration } from './index.js';

// Webhook endpoints, and their deliveries, which are the outbox: a trigger on `files` writes one delivery per
// enabled endpoint that subscribes to the event, in the transaction of the change that causes it (a File settling
// as processed or failed, or deleted), whichever statement makes that change: the worker's batched transitions, the
// attempts cap, the reconciler, DELETE. So an event exists exactly when its change committed, and no code path can
// forget to write one. The row as it was is kept in the delivery: a deleted File's event still says what it was.
// The same trigger notifies, at commit: `file_settled` with the File's id, which wakes the API's waiters
// (GET /files/{id}/?wait=N), and `webhook_deliveries` when it wrote any, which wakes the dispatchers.
export const createWebhooks: Migration = {
  name: '0005-webhooks',
  async up({ context: sql }) {
    // The trace context of the span that last settled the File (when tracing is on), copied into its events so
    // each delivery's span links to the File's trace. No default: a catalogue change, not a rewrite.
    await sql('ALTER TABLE files ADD COLUMN trace_parent text');
    await sql(`
      CREATE TABLE webhook_endpoints (
        id              uuid PRIMARY KEY,
        url             text NOT NULL,
        events          text[] NOT NULL,
        description     text NOT NULL DEFAULT '',
        secret          text NOT NULL,
        base_url        text NOT NULL,
        enabled         boolean NOT NULL DEFAULT true,
        disabled_reason text,
        failing_since   timestamptz(3),
        created_at      timestamptz(3) NOT NULL DEFAULT now(),
        updated_at      timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await sql(`
      CREATE TABLE webhook_deliveries (
        id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        endpoint_id     uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
        event_type      text NOT NULL,
        file_id         uuid NOT NULL,
        file            jsonb NOT NULL,
        created_at      timestamptz(3) NOT NULL DEFAULT clock_timestamp(),
        status          text NOT NULL DEFAULT 'pending',
        attempts        integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz(3) NOT NULL DEFAULT now(),
        last_status     integer,
        last_error      text,
        delivered_at    timestamptz(3)
      )`);
    // The dispatcher's claim: the due deliveries of one endpoint, oldest first.
    await sql(
      "CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint_id, next_attempt_at) WHERE status = 'pending'",
    );
    // An endpoint's recent deliveries, newest first; and the reconciler's pruning of old ones.
    await sql('CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC)');
    await sql("CREATE INDEX webhook_deliveries_done ON webhook_deliveries (created_at) WHERE status <> 'pending'");
    await sql(fileEvents(DELIVERY_PER_ENDPOINT));
    await sql(`
      CREATE TRIGGER files_settled AFTER UPDATE OF status ON files FOR EACH ROW
      WHEN (NEW.status IN ('processed', 'failed') AND OLD.status IS DISTINCT FROM NEW.status)
      EXECUTE FUNCTION file_events()`);
    await sql('CREATE TRIGGER files_deleted AFTER DELETE ON files FOR EACH ROW EXECUTE FUNCTION file_events()');
  },
  async down({ context: sql }) {
    await sql('DROP TRIGGER files_deleted ON files');
    await sql('DROP TRIGGER files_settled ON files');
    await sql('DROP FUNCTION file_events()');
    await sql('DROP TABLE webhook_deliveries');
    await sql('DROP TABLE webhook_endpoints');
    await sql('ALTER TABLE files DROP COLUMN trace_parent');
  },
};
