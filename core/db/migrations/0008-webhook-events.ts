import { DELIVERY_PER_ENDPOINT, fileEvents } from './fileEvents.js';
import type { Migration } from './index.js';

// The webhook outbox becomes events plus a fan-out. Migration 0005's trigger wrote one delivery per endpoint, each
// with its own copy of the File, inside the statement that settled the File: with 2,000 endpoints a worker's batch
// of 32 finishes wrote 64,000 rows before it could commit. Now the trigger writes one `webhook_events` row per
// change (the File once), only when some enabled endpoint subscribes to it, and the dispatchers fan events out into
// deliveries apart, each in one statement that also marks them fanned out (core/db/webhooks.ts). Deliveries refer to
// their event; those written before this migration keep their own `file` and are sent as they are.
// Online: `files` is never locked (the function is replaced in place); the two small tables are altered with a lock
// timeout, so a long transaction on them makes the migration fail (to be run again) rather than queue settles
// behind it; the new index is built CONCURRENTLY, an invalid one left by a dead attempt dropped first.
export const createWebhookEvents: Migration = {
  name: '0008-webhook-events',
  async up({ context: sql }) {
    await sql(`
      CREATE TABLE IF NOT EXISTS webhook_events (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        type          text NOT NULL,
        file_id       uuid NOT NULL,
        file          jsonb NOT NULL,
        created_at    timestamptz(3) NOT NULL DEFAULT clock_timestamp(),
        fanned_out_at timestamptz(3)
      )`);
    // The dispatchers' fan-out takes the oldest events not yet fanned out.
    await sql('CREATE INDEX IF NOT EXISTS webhook_events_unfanned ON webhook_events (id) WHERE fanned_out_at IS NULL');
    // The reconciler's pruning walks the events older than the retention.
    await sql('CREATE INDEX IF NOT EXISTS webhook_events_created ON webhook_events (created_at)');
    // First, so that settling a File no longer touches webhook_deliveries while it is altered below.
    await sql(
      fileEvents(`
        -- One row whatever the number of endpoints: the check stops at the first subscriber.
        IF EXISTS (SELECT 1 FROM webhook_endpoints AS e WHERE e.enabled AND event = ANY (e.events)) THEN
          INSERT INTO webhook_events (type, file_id, file) VALUES (event, changed.id, to_jsonb(changed));
          -- Identical notifications in one transaction arrive as one: a batch of 32 wakes the dispatchers once.
          PERFORM pg_notify('webhook_deliveries', '');
        END IF;`),
    );
    // When `enabled` last changed (or the endpoint was made): the fan-out gives an event to the endpoints that were
    // enabled when it happened, however late it runs. Existing endpoints count as changed now.
    await sql(
      briefLock(
        'ALTER TABLE webhook_endpoints ADD COLUMN IF NOT EXISTS enabled_changed_at timestamptz(3) NOT NULL DEFAULT now()',
      ),
    );
    await sql(
      briefLock(
        'ALTER TABLE webhook_deliveries ADD COLUMN IF NOT EXISTS event_id bigint, ALTER COLUMN file DROP NOT NULL',
      ),
    );
    // One delivery per event and endpoint, whatever runs the fan-out; also how pruning finds an event's deliveries.
    await sql('DROP INDEX CONCURRENTLY IF EXISTS webhook_deliveries_event');
    await sql(
      `CREATE UNIQUE INDEX CONCURRENTLY webhook_deliveries_event ON webhook_deliveries (event_id, endpoint_id)
       WHERE event_id IS NOT NULL`,
    );
  },
  async down({ context: sql }) {
    // Back to a delivery per endpoint written by the trigger: events not yet fanned out are fanned out the old way
    // (to the endpoints enabled now), and every delivery gets its File back from its event.
    await sql(fileEvents(DELIVERY_PER_ENDPOINT));
    await sql(`
      INSERT INTO webhook_deliveries (endpoint_id, event_type, file_id, file, created_at)
      SELECT e.id, ev.type, ev.file_id, ev.file, ev.created_at
      FROM webhook_events AS ev JOIN webhook_endpoints AS e ON e.enabled AND ev.type = ANY (e.events)
      WHERE ev.fanned_out_at IS NULL`);
    await sql(`
      UPDATE webhook_deliveries AS d SET file = ev.file
      FROM webhook_events AS ev WHERE d.event_id = ev.id AND d.file IS NULL`);
    await sql('DELETE FROM webhook_deliveries WHERE file IS NULL');
    await sql('DROP INDEX IF EXISTS webhook_deliveries_event');
    await sql('ALTER TABLE webhook_deliveries DROP COLUMN event_id, ALTER COLUMN file SET NOT NULL');
    await sql('ALTER TABLE webhook_endpoints DROP COLUMN enabled_changed_at');
    await sql('DROP TABLE webhook_events');
  },
};

/** The statement, failing after 2 s waiting for its lock instead of queueing every later statement behind it. */
const briefLock = (statement: string): string => `DO $$ BEGIN SET LOCAL lock_timeout = '2s'; ${statement}; END $$`;
