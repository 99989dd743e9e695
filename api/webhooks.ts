// The webhook endpoints' HTTP API: clients register the URLs that hear of Files settling or being deleted, and
// read (and retry) what was sent to them. Events are written by a trigger on `files` (migration 0007), made into
// deliveries and sent by the worker's dispatchers; here deliveries are only listed and rescheduled.
import type Koa from 'koa';
import {
  WEBHOOK_EVENTS,
  type Database,
  type EndpointChange,
  type WebhookDelivery,
  type WebhookEndpoint,
  type WebhookEvent,
} from '../core/db/index.js';
import { newId, parseId } from '../core/ids.js';
import { checkWebhookUrl, WebhookUrlError, type UrlPolicy } from '../core/webhooks/addresses.js';
import {
  DEFAULT_DELIVERY_LIMIT,
  DEFAULT_ENDPOINT_LIMIT,
  MAX_DELIVERY_LIMIT,
  MAX_ENDPOINT_LIMIT,
  WebhookEndpointChangeSchema,
  WebhookEndpointRequestSchema,
  type NewWebhookEndpointJson,
  type WebhookDeliveryJson,
  type WebhookEndpointJson,
} from '../core/webhooks/schema.js';
import { newSigningSecret } from '../core/webhooks/signing.js';
import { AppError, type FieldError } from './errors.js';
import { readBody } from './json.js';
import { decodePosition, encodePosition, type Position } from './listing.js';
import { pathParam, routeUrl } from './routes.js';

export interface WebhookHandlerDeps {
  db: Database;
  baseUrl: (ctx: Koa.Context) => string;
  /** WEBHOOK_ALLOW_HTTP and WEBHOOK_ALLOW_PRIVATE. */
  urlPolicy: UrlPolicy;
  /** MAX_WEBHOOK_ENDPOINTS. */
  maxEndpoints: number;
}

/** An endpoint's JSON is a few hundred bytes; anything longer is not one. */
const MAX_BODY_BYTES = 16 * 1024;

const endpointNotFound = () => new AppError('not_found', 'There is no webhook endpoint with this id.');

/** The path parameter as a canonical id; 404 for a malformed one, as for an unknown one. */
function idParam(ctx: Koa.Context, name: string, notFound: () => AppError): string {
  const id = parseId(pathParam(ctx, name));
  if (!id) throw notFound();
  return id;
}

export function webhookHandlers(deps: WebhookHandlerDeps) {
  const { db, baseUrl } = deps;

  /** The URL, normalized, once checkWebhookUrl allows it: what is checked is what the dispatcher will send to. */
  async function allowedUrl(raw: string): Promise<string> {
    try {
      return (await checkWebhookUrl(raw, deps.urlPolicy)).href;
    } catch (err) {
      if (!(err instanceof WebhookUrlError)) throw err;
      throw new AppError('webhook_url_forbidden', err.message, { errors: [{ field: 'url', message: err.message }] });
    }
  }

  async function findEndpoint(ctx: Koa.Context): Promise<WebhookEndpoint> {
    const endpoint = await db.webhooks.findEndpoint(idParam(ctx, 'id', endpointNotFound));
    if (!endpoint) throw endpointNotFound();
    return endpoint;
  }

  const createWebhook: Koa.Middleware = async (ctx) => {
    const fields = await readBody(ctx, WebhookEndpointRequestSchema, bodyOptions);
    const url = await allowedUrl(fields.url);
    const secret = newSigningSecret();
    const base = baseUrl(ctx);
    const endpoint = await db.webhooks.createEndpoint(
      {
        // A UUIDv7, as File ids are.
        id: newId(),
        url,
        events: canonicalEvents(fields.events),
        description: fields.description ?? '',
        secret,
        baseUrl: base,
      },
      deps.maxEndpoints,
    );
    if (!endpoint) {
      throw new AppError(
        'webhook_limit_reached',
        `There are ${deps.maxEndpoints} webhook endpoints already, the most this service keeps ` +
          '(MAX_WEBHOOK_ENDPOINTS); delete one you no longer use, or send more events to one receiver.',
      );
    }
    ctx.status = 201;
    ctx.set('Location', routeUrl(base, 'getWebhook', { id: endpoint.id }));
    const created: NewWebhookEndpointJson = { ...serializeEndpoint(endpoint), secret };
    ctx.body = created;
  };

  const listWebhooks: Koa.Middleware = async (ctx) => {
    const query = parsePageQuery(ctx.query, DEFAULT_ENDPOINT_LIMIT, MAX_ENDPOINT_LIMIT);
    const rows = await db.webhooks.listEndpoints(
      query.limit + 1,
      query.position && { createdAt: query.position.at, id: query.position.id },
    );
    ctx.body = pageOf(rows, query.limit, routeUrl(baseUrl(ctx), 'listWebhooks'), serializeEndpoint);
  };

  const getWebhook: Koa.Middleware = async (ctx) => {
    ctx.body = serializeEndpoint(await findEndpoint(ctx));
  };

  const updateWebhook: Koa.Middleware = async (ctx) => {
    const id = idParam(ctx, 'id', endpointNotFound);
    const change: EndpointChange = await readBody(ctx, WebhookEndpointChangeSchema, bodyOptions);
    if (change.url !== undefined) change.url = await allowedUrl(change.url);
    if (change.events !== undefined) change.events = canonicalEvents(change.events);
    const endpoint = await db.webhooks.updateEndpoint(id, change);
    if (!endpoint) throw endpointNotFound();
    ctx.body = serializeEndpoint(endpoint);
  };

  const deleteWebhook: Koa.Middleware = async (ctx) => {
    if (!(await db.webhooks.removeEndpoint(idParam(ctx, 'id', endpointNotFound)))) throw endpointNotFound();
    ctx.status = 204;
  };

  const listWebhookDeliveries: Koa.Middleware = async (ctx) => {
    const endpoint = await findEndpoint(ctx);
    const query = parsePageQuery(ctx.query, DEFAULT_DELIVERY_LIMIT, MAX_DELIVERY_LIMIT);
    const rows = await db.webhooks.deliveries(
      endpoint.id,
      query.limit + 1,
      query.position && { createdAt: query.position.at, id: query.position.id },
    );
    const listUrl = routeUrl(baseUrl(ctx), 'listWebhookDeliveries', { id: endpoint.id });
    ctx.body = pageOf(rows, query.limit, listUrl, serializeDelivery);
  };

  const retryWebhookDelivery: Koa.Middleware = async (ctx) => {
    const notFound = () => new AppError('not_found', 'There is no delivery with this id for this webhook endpoint.');
    const delivery = await db.webhooks.retryDelivery(
      idParam(ctx, 'id', notFound),
      idParam(ctx, 'delivery_id', notFound),
    );
    if (!delivery) throw notFound();
    ctx.status = 202;
    ctx.body = serializeDelivery(delivery);
  };

  return {
    createWebhook,
    listWebhooks,
    getWebhook,
    updateWebhook,
    deleteWebhook,
    listWebhookDeliveries,
    retryWebhookDelivery,
  };
}

const bodyOptions = { what: 'webhook endpoint', maxBytes: MAX_BODY_BYTES };

/** The events, each once, in their canonical order. */
const canonicalEvents = (events: readonly WebhookEvent[]): WebhookEvent[] =>
  WEBHOOK_EVENTS.filter((event) => events.includes(event));

interface PageQuery {
  limit: number;
  /** Where the page starts: just past the last row of the page before. */
  position?: Position;
}

/** `limit` and `cursor`, as the files list takes them; every problem reported at once, per field. */
function parsePageQuery(
  query: Record<string, string | string[] | undefined>,
  defaultLimit: number,
  maxLimit: number,
): PageQuery {
  const errors: FieldError[] = [];
  const parsed: PageQuery = { limit: defaultLimit };
  const { limit, cursor } = query;
  if (limit !== undefined) {
    const value = Number(limit);
    if (typeof limit !== 'string' || !/^\d+$/.test(limit) || value < 1 || value > maxLimit) {
      errors.push({ field: 'limit', message: `Must be a whole number from 1 to ${maxLimit}, given once.` });
    } else parsed.limit = value;
  }
  if (cursor !== undefined) {
    const position = typeof cursor === 'string' ? decodePosition(cursor) : null;
    if (position) parsed.position = position;
    else errors.push({ field: 'cursor', message: 'Not a cursor this API issued; use the `next` link of a page.' });
  }
  if (errors.length)
    throw new AppError('invalid_query', 'Some query parameters are invalid; see `errors`.', { errors });
  return parsed;
}

/**
 * A page of a list walked by (created_at, id): `rows` were read one more than `limit`, which tells whether a next
 * page exists without counting; `next` is its URL, at the same `limit`.
 */
function pageOf<Row extends { created_at: Date; id: string }, Json>(
  rows: Row[],
  limit: number,
  listUrl: string,
  serialize: (row: Row) => Json,
): { results: Json[]; next: string | null } {
  const page = rows.slice(0, limit);
  const last = rows.length > limit ? page.at(-1) : undefined;
  const cursor = last && encodePosition({ at: last.created_at, id: last.id });
  return {
    results: page.map(serialize),
    next: cursor ? `${listUrl}?${new URLSearchParams({ limit: String(limit), cursor }).toString()}` : null,
  };
}

export function serializeEndpoint(endpoint: WebhookEndpoint): WebhookEndpointJson {
  return {
    id: endpoint.id,
    url: endpoint.url,
    events: endpoint.events,
    description: endpoint.description,
    enabled: endpoint.enabled,
    disabled_reason: endpoint.disabled_reason,
    created_at: endpoint.created_at.toISOString(),
    updated_at: endpoint.updated_at.toISOString(),
  };
}

function serializeDelivery(delivery: WebhookDelivery): WebhookDeliveryJson {
  return {
    id: delivery.id,
    event: delivery.event_type,
    file_id: delivery.file_id,
    attempts: delivery.attempts,
    status: delivery.status,
    last_status: delivery.last_status,
    last_error: delivery.last_error,
    next_attempt_at: delivery.next_attempt_at ? delivery.next_attempt_at.toISOString() : null,
    created_at: delivery.created_at.toISOString(),
    delivered_at: delivery.delivered_at ? delivery.delivered_at.toISOString() : null,
  };
}
