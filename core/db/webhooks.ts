// Webhook endpoints, events and deliveries. Events are written by the `files` trigger (migration 0007), in the
// transaction of the change they announce, one per change; here the dispatchers fan them out into one delivery per
// endpoint, claim the deliveries and record their outcomes, and the API lists and retries them.
import type { Sql, Transaction } from './files.js';

export const WEBHOOK_EVENTS = ['file.processed', 'file.failed', 'file.deleted'] as const;
export type WebhookEvent = (typeof WEBHOOK_EVENTS)[number];

export const DELIVERY_STATUSES = ['pending', 'delivered', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** Why an endpoint is disabled: by a PATCH, by a `410 Gone`, or by failing for WEBHOOK_DISABLE_AFTER_MS. */
export type DisabledReason = 'manual' | 'gone' | 'failing';

export interface WebhookEndpoint {
  id: string;
  url: string;
  events: WebhookEvent[];
  description: string;
  enabled: boolean;
  disabled_reason: DisabledReason | null;
  /** Since when every delivery failed; null after a success. */
  failing_since: Date | null;
  created_at: Date;
  updated_at: Date;
}

export interface NewEndpoint {
  id: string;
  url: string;
  events: WebhookEvent[];
  description: string;
  secret: string;
  /** Origin of the File URLs in this endpoint's payloads: the API's, as the client that registered it saw it. */
  baseUrl: string;
}

export interface EndpointChange {
  url?: string;
  events?: WebhookEvent[];
  description?: string;
  enabled?: boolean;
}

export interface WebhookDelivery {
  id: string;
  endpoint_id: string;
  event_type: WebhookEvent;
  file_id: string;
  status: DeliveryStatus;
  attempts: number;
  /** When the next attempt is due; null unless pending. */
  next_attempt_at: Date | null;
  last_status: number | null;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
}

/** A delivery a dispatcher took, with what sending it needs. */
export interface ClaimedDelivery extends WebhookDelivery {
  /** The `files` row as it was when the event happened, as stored (core/webhooks/events.ts reads it). */
  file: unknown;
  url: string;
  secret: string;
  base_url: string;
}

/** What one fan-out did. */
export interface FanOut {
  /** Events fanned out (now marked so); 0 when none waited. */
  events: number;
  /** Deliveries made of them. */
  deliveries: number;
}

/** What one pruning removed. */
export interface Pruned {
  deliveries: number;
  /** Events fanned out long ago that no delivery needs any more. */
  events: number;
}

/** What one attempt came to. */
export type AttemptOutcome =
  | { ok: true; status: number }
  | {
      ok: false;
      status: number | null;
      error: string;
      /** When to try again; null when the delivery has had its attempts (it becomes `failed`). */
      retryAt: Date | null;
      /** The receiver answered 410 Gone: the endpoint is disabled. */
      gone: boolean;
    };

const ENDPOINT_COLUMNS =
  'id, url, events, description, enabled, disabled_reason, failing_since, created_at, updated_at';
const DELIVERY_COLUMNS =
  "d.id, d.endpoint_id, d.event_type, d.file_id, d.status, d.attempts, CASE WHEN d.status = 'pending' THEN d.next_attempt_at END AS next_attempt_at, d.last_status, d.last_error, d.created_at, d.delivered_at";

/** Serializes endpoint creations (any constant; `pg_advisory_xact_lock` keys are per database). */
const ENDPOINT_CREATION_LOCK = 0x77656268;

/**
 * Whether endpoint `e` gets event `ev`: it subscribes to the event's type, was made no later than it, and was enabled
 * when it happened (enabled, and not re-enabled since; or disabled only after it). One change of `enabled` between an
 * event and its fan-out is judged exactly; the fan-out runs within moments unless every dispatcher is down.
 */
const RECEIVES = `ev.type = ANY (e.events) AND e.created_at <= ev.created_at
  AND CASE WHEN e.enabled THEN e.enabled_changed_at <= ev.created_at ELSE e.enabled_changed_at > ev.created_at END`;

export class Webhooks {
  constructor(
    private readonly sql: Sql,
    private readonly transaction: Transaction,
  ) {}

  /**
   * Registers the endpoint unless `max` exist already (then null). Creations take turns on a lock, so each counts
   * what the one before it made: concurrent requests at the cap cannot all slip in.
   */
  createEndpoint(endpoint: NewEndpoint, max: number): Promise<WebhookEndpoint | null> {
    return this.transaction(async (sql) => {
      await sql('SELECT pg_advisory_xact_lock($1)', [ENDPOINT_CREATION_LOCK]);
      const rows = await sql<WebhookEndpoint>(
        `INSERT INTO webhook_endpoints (id, url, events, description, secret, base_url)
         SELECT $1, $2, $3, $4, $5, $6 WHERE (SELECT count(*) FROM webhook_endpoints) < $7
         RETURNING ${ENDPOINT_COLUMNS}`,
        [endpoint.id, endpoint.url, endpoint.events, endpoint.description, endpoint.secret, endpoint.baseUrl, max],
      );
      return rows[0] ?? null;
    });
  }

  /** A page of endpoints, oldest first, from just after `after` when given. */
  listEndpoints(limit: number, after?: { createdAt: Date; id: string }): Promise<WebhookEndpoint[]> {
    const position = after ? 'WHERE (created_at, id) > ($2, $3)' : '';
    return this.sql(
      `SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints ${position} ORDER BY created_at, id LIMIT $1`,
      after ? [limit, after.createdAt, after.id] : [limit],
    );
  }

  async findEndpoint(id: string): Promise<WebhookEndpoint | null> {
    const rows = await this.sql<WebhookEndpoint>(`SELECT ${ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1`, [
      id,
    ]);
    return rows[0] ?? null;
  }

  /** Applies the change; enabling an endpoint clears why it was disabled and its failing streak. */
  async updateEndpoint(id: string, change: EndpointChange): Promise<WebhookEndpoint | null> {
    const rows = await this.sql<WebhookEndpoint>(
      `UPDATE webhook_endpoints SET
         url = coalesce($2, url),
         events = coalesce($3, events),
         description = coalesce($4, description),
         enabled = coalesce($5, enabled),
         disabled_reason = CASE WHEN $5 IS NULL THEN disabled_reason WHEN $5 THEN NULL ELSE 'manual' END,
         failing_since = CASE WHEN $5 THEN NULL ELSE failing_since END,
         enabled_changed_at = CASE WHEN $5 IS DISTINCT FROM enabled AND $5 IS NOT NULL THEN now() ELSE enabled_changed_at END,
         updated_at = now()
       WHERE id = $1 RETURNING ${ENDPOINT_COLUMNS}`,
      [id, change.url ?? null, change.events ?? null, change.description ?? null, change.enabled ?? null],
    );
    return rows[0] ?? null;
  }

  /** Removes the endpoint and its deliveries (pending ones are not sent). */
  async removeEndpoint(id: string): Promise<boolean> {
    const rows = await this.sql('DELETE FROM webhook_endpoints WHERE id = $1 RETURNING 1', [id]);
    return rows.length > 0;
  }

  /** The endpoint's deliveries, newest first, from just before `before` (a delivery id) when given. */
  deliveries(endpointId: string, limit: number, before?: { createdAt: Date; id: string }): Promise<WebhookDelivery[]> {
    const position = before ? 'AND (d.created_at, d.id) < ($3, $4)' : '';
    return this.sql(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries AS d WHERE d.endpoint_id = $1 ${position}
       ORDER BY d.created_at DESC, d.id DESC LIMIT $2`,
      before ? [endpointId, limit, before.createdAt, before.id] : [endpointId, limit],
    );
  }

  /**
   * Sends the delivery again now, whatever became of it: one more attempt for a failed one (the same
   * `webhook-id`, so a receiver that got it already can tell), at once for one that waits for its next attempt.
   */
  async retryDelivery(endpointId: string, id: string): Promise<WebhookDelivery | null> {
    const rows = await this.sql<WebhookDelivery>(
      `UPDATE webhook_deliveries AS d SET status = 'pending', next_attempt_at = now()
       WHERE d.endpoint_id = $1 AND d.id = $2 RETURNING ${DELIVERY_COLUMNS}`,
      [endpointId, id],
    );
    if (rows[0]) await this.sql("SELECT pg_notify('webhook_deliveries', '')");
    return rows[0] ?? null;
  }

  /**
   * Fans out up to `events` events, oldest first, into a delivery for each endpoint that gets it (see RECEIVES), and
   * marks them fanned out, in one statement: an event is fanned out whole or not at all, whatever dies meanwhile.
   * Fewer events go at once when there are many endpoints, so that one statement makes about `deliveries` rows at
   * most. SKIP LOCKED lets every worker fan out at once, each its own events. A delivery's `created_at` is its
   * event's: when the change happened, which its payload says and its list is ordered by.
   */
  async fanOut(events: number, deliveries: number): Promise<FanOut> {
    const rows = await this.sql<FanOut>(
      `WITH taken AS (
         SELECT id, type, file_id, created_at FROM webhook_events
         WHERE fanned_out_at IS NULL ORDER BY id
         LIMIT greatest(1, least($1, $2 / greatest(1, (SELECT count(*) FROM webhook_endpoints WHERE enabled))))
         FOR UPDATE SKIP LOCKED
       ), marked AS (
         UPDATE webhook_events AS ev SET fanned_out_at = now() FROM taken WHERE ev.id = taken.id RETURNING ev.id
       ), made AS (
         INSERT INTO webhook_deliveries (endpoint_id, event_id, event_type, file_id, created_at)
         SELECT e.id, ev.id, ev.type, ev.file_id, ev.created_at
         FROM taken AS ev JOIN webhook_endpoints AS e ON ${RECEIVES}
         ON CONFLICT (event_id, endpoint_id) WHERE event_id IS NOT NULL DO NOTHING
         RETURNING 1
       )
       SELECT (SELECT count(*) FROM marked)::int AS events, (SELECT count(*) FROM made)::int AS deliveries`,
      [events, deliveries],
    );
    return rows[0]!;
  }

  /**
   * Takes due deliveries of enabled endpoints, oldest first per endpoint: at most `perEndpoint` less what this
   * process is sending to it already (`busy`), and `total` in all. Each attempt is counted as it is taken, and the
   * delivery is leased until `leaseMs` from now: if this process dies while sending, another one takes it then.
   * SKIP LOCKED lets every worker claim at once without waiting for the others.
   */
  claim(busy: Map<string, number>, perEndpoint: number, total: number, leaseMs: number): Promise<ClaimedDelivery[]> {
    return this.sql<ClaimedDelivery>(
      `UPDATE webhook_deliveries AS d
         SET attempts = d.attempts + 1, next_attempt_at = now() + $4 * interval '1 millisecond'
       FROM (
         SELECT due.id, e.url, e.secret, e.base_url
         FROM webhook_endpoints AS e
         LEFT JOIN unnest($1::uuid[], $2::int[]) AS b(endpoint_id, sending) ON b.endpoint_id = e.id
         CROSS JOIN LATERAL (
           SELECT id FROM webhook_deliveries
           WHERE endpoint_id = e.id AND status = 'pending' AND next_attempt_at <= now()
           ORDER BY next_attempt_at LIMIT greatest(0, $3 - coalesce(b.sending, 0))
           FOR UPDATE SKIP LOCKED
         ) AS due
         WHERE e.enabled
         LIMIT $5
       ) AS taken
       WHERE d.id = taken.id
       RETURNING ${DELIVERY_COLUMNS}, taken.url, taken.secret, taken.base_url,
         -- Deliveries made before migration 0007 carry their own File.
         coalesce(d.file, (SELECT ev.file FROM webhook_events AS ev WHERE ev.id = d.event_id)) AS file`,
      [[...busy.keys()], [...busy.values()], perEndpoint, leaseMs, total],
    );
  }

  /**
   * Records an attempt's outcome on the delivery and on its endpoint, in one statement: a success ends the
   * endpoint's failing streak; a failure starts one, and disables the endpoint on a `410 Gone` or once the streak
   * is older than `disableAfterMs`. Answers whether the endpoint is (still) enabled.
   */
  async recordAttempt(id: string, outcome: AttemptOutcome, disableAfterMs: number): Promise<boolean> {
    if (outcome.ok) {
      const rows = await this.sql<{ enabled: boolean }>(
        `WITH d AS (
           UPDATE webhook_deliveries SET status = 'delivered', delivered_at = now(), last_status = $2, last_error = NULL
           WHERE id = $1 AND status = 'pending' RETURNING endpoint_id
         )
         UPDATE webhook_endpoints AS e SET failing_since = NULL FROM d WHERE e.id = d.endpoint_id RETURNING e.enabled`,
        [id, outcome.status],
      );
      return rows[0]?.enabled ?? true;
    }
    const rows = await this.sql<{ enabled: boolean }>(
      `WITH d AS (
         UPDATE webhook_deliveries SET
           status = CASE WHEN $4::timestamptz IS NULL OR $5 THEN 'failed' ELSE 'pending' END,
           next_attempt_at = coalesce($4, next_attempt_at), last_status = $2, last_error = $3
         WHERE id = $1 AND status = 'pending' RETURNING endpoint_id
       ), streak AS (
         SELECT e.id, $5 AS gone, coalesce(e.failing_since, now()) < now() - $6 * interval '1 millisecond' AS too_long
         FROM webhook_endpoints AS e JOIN d ON e.id = d.endpoint_id
       )
       UPDATE webhook_endpoints AS e SET
         failing_since = coalesce(e.failing_since, now()),
         enabled = e.enabled AND NOT (s.gone OR s.too_long),
         disabled_reason = CASE WHEN NOT e.enabled THEN e.disabled_reason WHEN s.gone THEN 'gone'
                                WHEN s.too_long THEN 'failing' END,
         enabled_changed_at = CASE WHEN e.enabled AND (s.gone OR s.too_long) THEN now() ELSE e.enabled_changed_at END,
         updated_at = CASE WHEN e.enabled AND (s.gone OR s.too_long) THEN now() ELSE e.updated_at END
       FROM streak AS s WHERE e.id = s.id RETURNING e.enabled`,
      [id, outcome.status, outcome.error, outcome.retryAt, outcome.gone, disableAfterMs],
    );
    return rows[0]?.enabled ?? true;
  }

  /**
   * What waits to be sent: deliveries pending for enabled endpoints, and events not fanned out yet (each counts one:
   * with no dispatcher at work, these are what grows); and how long the oldest of them has waited since its event.
   */
  async backlog(): Promise<{ pending: number; oldestSeconds: number }> {
    const rows = await this.sql<{ pending: string; oldest: number | null }>(
      `SELECT sum(n) AS pending, extract(epoch FROM now() - min(oldest))::float8 AS oldest FROM (
         SELECT count(*) AS n, min(d.created_at) AS oldest
         FROM webhook_deliveries AS d JOIN webhook_endpoints AS e ON e.id = d.endpoint_id
         WHERE d.status = 'pending' AND e.enabled
         UNION ALL
         SELECT count(*), min(created_at) FROM webhook_events WHERE fanned_out_at IS NULL
       ) AS waiting`,
    );
    return { pending: Number(rows[0]?.pending ?? 0), oldestSeconds: rows[0]?.oldest ?? 0 };
  }

  /** Enabled endpoints whose deliveries have all failed since some time (for the failing-endpoints gauge). */
  async failingEndpoints(): Promise<number> {
    const rows = await this.sql<{ failing: string }>(
      'SELECT count(*) AS failing FROM webhook_endpoints WHERE enabled AND failing_since IS NOT NULL',
    );
    return Number(rows[0]?.failing ?? 0);
  }

  /**
   * Removes up to `limit` delivered or failed deliveries whose event happened before `before`, then up to `limit`
   * events fanned out before then that no delivery refers to any more (a pending one keeps its event, however old).
   */
  async prune(before: Date, limit: number): Promise<Pruned> {
    const deliveries = await this.sql(
      `DELETE FROM webhook_deliveries WHERE id IN (
         SELECT id FROM webhook_deliveries WHERE status <> 'pending' AND created_at < $1 LIMIT $2
       ) RETURNING 1`,
      [before, limit],
    );
    // A fanned-out event gets no more deliveries, so one that none refers to now never will.
    const events = await this.sql(
      `DELETE FROM webhook_events WHERE id IN (
         SELECT ev.id FROM webhook_events AS ev
         WHERE ev.created_at < $1 AND ev.fanned_out_at IS NOT NULL
           AND NOT EXISTS (SELECT 1 FROM webhook_deliveries AS d WHERE d.event_id = ev.id)
         LIMIT $2
       ) RETURNING 1`,
      [before, limit],
    );
    return { deliveries: deliveries.length, events: events.length };
  }
}
