// The trigger function of `files` as migrations write it: which change is an event (a File settling as processed
// or failed, or deleted) and the notification `?wait` listens to stay the same; what an event writes is each
// migration's own (`record`, PL/pgSQL that may use `changed`, the row, and `event`, its type).
export const fileEvents = (record: string): string => `
  CREATE OR REPLACE FUNCTION file_events() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    changed files;
    event text;
  BEGIN
    IF TG_OP = 'DELETE' THEN
      changed := OLD;
      event := 'file.deleted';
    ELSE
      changed := NEW;
      event := 'file.' || NEW.status;
    END IF;
    ${record}
    PERFORM pg_notify('file_settled', changed.id::text);
    RETURN NULL;
  END $$`;

/** Migration 0005's record: a delivery per enabled endpoint that subscribes, each with the row as it was. */
export const DELIVERY_PER_ENDPOINT = `
  INSERT INTO webhook_deliveries (endpoint_id, event_type, file_id, file)
    SELECT endpoint.id, event, changed.id, to_jsonb(changed)
    FROM webhook_endpoints AS endpoint
    WHERE endpoint.enabled AND event = ANY (endpoint.events);
  IF FOUND THEN
    -- Identical notifications in one transaction arrive as one: a batch of 32 wakes the dispatchers once.
    PERFORM pg_notify('webhook_deliveries', '');
  END IF;`;
