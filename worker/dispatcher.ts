// The webhook dispatcher, in every worker process: it fans the events the `files` trigger writes out into one
// delivery per endpoint, claims due deliveries from PostgreSQL, sends them, and records each outcome. Nothing about
// an event or a delivery lives only in memory: a fan-out is one statement, done whole or not at all; a claimed
// delivery is leased, so one whose worker dies mid-send is taken again by any worker when the lease ends; and Redis
// plays no part at all (a Redis outage delays processing, never a notification).
// It wakes on `webhook_deliveries` notifications (sent at commit by the trigger), on its own timers for retries it
// scheduled, and on a slow poll that catches what a lost notification or another worker's retry left due.
import { context, propagation, ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Tracer } from '@opentelemetry/api';
import type { AttemptOutcome, ClaimedDelivery, Database, Notifications } from '../core/db/index.js';
import { eventBody, traceParentOf, type StoredEvent } from '../core/webhooks/events.js';
import { signatureHeaders } from '../core/webhooks/signing.js';
import { sendWebhook, type SendResult } from '../core/webhooks/send.js';
import type { Logger } from '../core/telemetry/logger.js';
import type { Metrics } from '../core/telemetry/metrics.js';

export interface DispatcherSettings {
  timeoutMs: number;
  maxAttempts: number;
  retryBaseMs: number;
  disableAfterMs: number;
  concurrency: number;
  endpointConcurrency: number;
  allowPrivate: boolean;
  /** How often to look for due deliveries without being told (default 1 s). */
  pollMs?: number;
}

export interface DispatcherDeps {
  db: Database;
  notifications: Notifications;
  logger: Logger;
  metrics: Metrics;
  tracer: Tracer;
  userAgent: string;
  settings: DispatcherSettings;
}

/** Each retry waits this many times longer than the one before, up to MAX_RETRY_DELAY_MS. */
const RETRY_GROWTH = 5;
const MAX_RETRY_DELAY_MS = 10 * 3600_000;
/** A delivery's lease outlasts its send by this much; past it, another worker may take it. */
const LEASE_MARGIN_MS = 30_000;
const DEFAULT_POLL_MS = 1_000;
/** Events one fan-out takes at most, and about the most deliveries it makes (fewer events with many endpoints). */
const FANOUT_EVENTS = 100;
const FANOUT_DELIVERIES = 5_000;

/** The wait before attempt `attempt + 1`, after `attempt` failed: base × 5^(attempt-1), at most 10 h, ±20%. */
export function retryDelayMs(attempt: number, baseMs: number, random = Math.random()): number {
  const delay = Math.min(baseMs * RETRY_GROWTH ** (attempt - 1), MAX_RETRY_DELAY_MS);
  return Math.round(delay * (0.8 + 0.4 * random));
}

export class WebhookDispatcher {
  /** Deliveries being sent, per endpoint. */
  private readonly busy = new Map<string, number>();
  private sending = 0;
  private readonly inFlight = new Set<Promise<void>>();
  private claiming: Promise<void> | null = null;
  private claimAgain = false;
  private stopped = true;
  private poll: NodeJS.Timeout | undefined;
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  private readonly unsubscribe: Array<() => void> = [];

  constructor(private readonly deps: DispatcherDeps) {}

  start(): void {
    this.stopped = false;
    const { notifications, settings } = this.deps;
    this.unsubscribe.push(
      notifications.on('webhook_deliveries', () => this.wake()),
      notifications.onListening(() => this.wake()),
    );
    this.poll = setInterval(() => this.wake(), settings.pollMs ?? DEFAULT_POLL_MS);
    this.poll.unref();
    this.wake();
  }

  /** Stops claiming, and waits up to `timeoutMs` for the sends in flight; those cut off are retried by their lease. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopped = true;
    clearInterval(this.poll);
    for (const timer of this.retryTimers) clearTimeout(timer);
    for (const unsubscribe of this.unsubscribe.splice(0)) unsubscribe();
    const settled = Promise.allSettled([this.claiming, ...this.inFlight]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([settled, new Promise((resolve) => (timer = setTimeout(resolve, timeoutMs)))]);
    clearTimeout(timer);
  }

  /** Claims what is due, now or right after the claim in progress. */
  wake(): void {
    if (this.stopped) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claiming = this.claimWhileDue().finally(() => {
      this.claiming = null;
      if (this.claimAgain) this.wake();
    });
  }

  private async claimWhileDue(): Promise<void> {
    const { db, settings, logger } = this.deps;
    try {
      do {
        this.claimAgain = false;
        // Fanning out does not wait for a free slot: any worker may send what it makes.
        const fanned = await db.webhooks.fanOut(FANOUT_EVENTS, FANOUT_DELIVERIES);
        if (fanned.events > 0) this.claimAgain = true;
        const free = settings.concurrency - this.sending;
        if (free <= 0) continue;
        const claimed = await db.webhooks.claim(
          this.busy,
          settings.endpointConcurrency,
          free,
          settings.timeoutMs + LEASE_MARGIN_MS,
        );
        for (const delivery of claimed) this.dispatch(delivery);
        // A full claim may have left more behind.
        if (claimed.length === free) this.claimAgain = true;
      } while (this.claimAgain && !this.stopped);
    } catch (err) {
      // PostgreSQL is away: the poll tries again, and the leases keep what was claimed.
      logger.warn({ err }, 'could not claim webhook deliveries');
    }
  }

  private dispatch(delivery: ClaimedDelivery): void {
    this.sending++;
    this.busy.set(delivery.endpoint_id, (this.busy.get(delivery.endpoint_id) ?? 0) + 1);
    const sent = this.deliver(delivery)
      .catch((err: unknown) => this.deps.logger.error({ err, delivery_id: delivery.id }, 'webhook delivery failed'))
      .finally(() => {
        this.sending--;
        const left = (this.busy.get(delivery.endpoint_id) ?? 1) - 1;
        if (left > 0) this.busy.set(delivery.endpoint_id, left);
        else this.busy.delete(delivery.endpoint_id);
        this.inFlight.delete(sent);
        this.wake();
      });
    this.inFlight.add(sent);
  }

  /** One attempt, in a span linked to the trace of the File's processing, and its outcome recorded. */
  private async deliver(delivery: ClaimedDelivery): Promise<void> {
    const { tracer, metrics, settings, db, logger } = this.deps;
    const span = tracer.startSpan(
      `webhook ${delivery.event_type}`,
      {
        kind: SpanKind.CLIENT,
        attributes: {
          'webhook.delivery.id': delivery.id,
          'webhook.endpoint.id': delivery.endpoint_id,
          'webhook.event': delivery.event_type,
          'webhook.attempt': delivery.attempts,
          'file.id': delivery.file_id,
          'url.full': delivery.url,
        },
        links: linkTo(eventOf(delivery)),
      },
      ROOT_CONTEXT,
    );
    const started = process.hrtime.bigint();
    let result: SendResult;
    try {
      const body = eventBody(eventOf(delivery), delivery.base_url);
      const headers = signatureHeaders(delivery.secret, delivery.id, Math.floor(Date.now() / 1000), body);
      result = await context.with(trace.setSpan(ROOT_CONTEXT, span), () =>
        sendWebhook(new URL(delivery.url), headers, body, {
          timeoutMs: settings.timeoutMs,
          allowPrivate: settings.allowPrivate,
          userAgent: this.deps.userAgent,
        }),
      );
    } catch (err) {
      span.end();
      throw err;
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const outcome = this.outcomeOf(delivery, result);
    const label = outcome.ok ? 'delivered' : outcome.retryAt && !outcome.gone ? 'retried' : 'failed';
    metrics.webhookDeliveries.inc({ outcome: label });
    metrics.webhookDuration.observe({ outcome: label }, seconds);
    if (result.status !== null) span.setAttribute('http.response.status_code', result.status);
    if (!result.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: result.error });
    span.end();
    const enabled = await db.webhooks.recordAttempt(delivery.id, outcome, settings.disableAfterMs);
    if (!result.ok) {
      logger.warn(
        {
          delivery_id: delivery.id,
          endpoint_id: delivery.endpoint_id,
          file_id: delivery.file_id,
          attempt: delivery.attempts,
          status: result.status,
          error: result.error,
          outcome: label,
        },
        'webhook delivery attempt failed',
      );
      if (!enabled) logger.warn({ endpoint_id: delivery.endpoint_id }, 'webhook endpoint disabled');
    }
    if (!outcome.ok && outcome.retryAt && !outcome.gone) this.wakeAt(outcome.retryAt);
  }

  private outcomeOf(delivery: ClaimedDelivery, result: SendResult): AttemptOutcome {
    if (result.ok) return { ok: true, status: result.status };
    const { maxAttempts, retryBaseMs } = this.deps.settings;
    const retryAt =
      delivery.attempts >= maxAttempts ? null : new Date(Date.now() + retryDelayMs(delivery.attempts, retryBaseMs));
    return { ok: false, status: result.status, error: result.error, retryAt, gone: result.gone };
  }

  /** A retry this process scheduled is claimed on time rather than at the next poll. */
  private wakeAt(when: Date): void {
    if (this.stopped) return;
    const timer = setTimeout(
      () => {
        this.retryTimers.delete(timer);
        this.wake();
      },
      Math.max(0, when.getTime() - Date.now()),
    );
    timer.unref();
    this.retryTimers.add(timer);
  }
}

/** The event a delivery announces. */
const eventOf = (delivery: ClaimedDelivery): StoredEvent => ({
  type: delivery.event_type,
  createdAt: delivery.created_at,
  file: delivery.file,
});

/** A link to the span that settled the File, when tracing was on then (its trace context is kept in the row). */
function linkTo(event: StoredEvent) {
  const traceparent = traceParentOf(event);
  if (traceparent === null) return [];
  const linked = trace.getSpanContext(propagation.extract(ROOT_CONTEXT, { traceparent }));
  return linked ? [{ context: linked }] : [];
}
