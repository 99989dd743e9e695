// The webhook resources as clients see them, defined once: the JSON schemas of the OpenAPI document and the types
// the API's serializer returns both come from here.
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { StringEnum } from '../results/common.js';
import { DELIVERY_STATUSES, WEBHOOK_EVENTS } from '../db/webhooks.js';

export const DISABLED_REASONS = ['manual', 'gone', 'failing'] as const;

/** The longest description an endpoint may have. */
export const MAX_DESCRIPTION_LENGTH = 1024;

/** The page size of an endpoint's deliveries (`limit`). */
export const DEFAULT_DELIVERY_LIMIT = 50;
export const MAX_DELIVERY_LIMIT = 200;

/** The page size of the endpoints list (`limit`): by default a page holds every endpoint MAX_WEBHOOK_ENDPOINTS allows. */
export const DEFAULT_ENDPOINT_LIMIT = 100;
export const MAX_ENDPOINT_LIMIT = 1000;

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

const Timestamp = (description: string) =>
  Type.String({ format: 'date-time', description, examples: ['2026-11-26T18:07:14.123Z'] });

const Events = Type.Array(
  StringEnum(WEBHOOK_EVENTS, {
    description:
      '`file.processed` and `file.failed` when a File settles, `file.deleted` when it is deleted; the payload is the File as it was.',
  }),
  { minItems: 1, description: 'The events sent to this endpoint (duplicates are removed).' },
);
const Url = Type.String({
  format: 'uri',
  maxLength: 2048,
  errorMessage: 'An absolute URL of at most 2048 characters, https://...',
  description:
    'Where events are POSTed: `https://` (also `http://` with WEBHOOK_ALLOW_HTTP), without credentials or fragment, ' +
    'not resolving to a loopback, private, link-local or metadata address (unless WEBHOOK_ALLOW_PRIVATE).',
});
const Description = Type.String({ maxLength: MAX_DESCRIPTION_LENGTH, description: 'For people; any text.' });

const endpointFields = {
  id: Type.String({ format: 'uuid' }),
  url: Url,
  events: Events,
  description: Description,
  enabled: Type.Boolean({ description: 'Events are recorded and sent only while the endpoint is enabled.' }),
  disabled_reason: Nullable(
    StringEnum(DISABLED_REASONS, {
      description:
        'Why the endpoint is disabled: `manual` (a PATCH), `gone` (the receiver answered 410), `failing` (every ' +
        'delivery failed for WEBHOOK_DISABLE_AFTER_MS); null while enabled.',
    }),
  ),
  created_at: Timestamp('When the endpoint was registered.'),
  updated_at: Timestamp('When it last changed (a PATCH, or being disabled).'),
};

export const WebhookEndpointSchema = Type.Object(endpointFields, {
  additionalProperties: false,
  $id: 'WebhookEndpoint',
});
export type WebhookEndpointJson = Static<typeof WebhookEndpointSchema>;

export const NewWebhookEndpointSchema = Type.Object(
  {
    ...endpointFields,
    secret: Type.String({
      pattern: '^whsec_[A-Za-z0-9+/]{32}$',
      description:
        'The signing secret (Standard Webhooks): `whsec_` and the base64 of the HMAC-SHA256 key. Shown only in this answer.',
    }),
  },
  { additionalProperties: false, $id: 'NewWebhookEndpoint' },
);
export type NewWebhookEndpointJson = Static<typeof NewWebhookEndpointSchema>;

export const WebhookEndpointRequestSchema = Type.Object(
  { url: Url, events: Events, description: Type.Optional(Description) },
  { additionalProperties: false, $id: 'WebhookEndpointRequest' },
);

export const WebhookEndpointChangeSchema = Type.Object(
  {
    url: Type.Optional(Url),
    events: Type.Optional(Events),
    description: Type.Optional(Description),
    enabled: Type.Optional(
      Type.Boolean({ description: 'false disables the endpoint (`manual`); true enables it again.' }),
    ),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    errorMessage: 'Send at least one field to change (url, events, description, enabled).',
    $id: 'WebhookEndpointChange',
  },
);

export const WebhookDeliverySchema = Type.Object(
  {
    id: Type.String({ format: 'uuid', description: 'Also the `webhook-id` header, the same at every attempt.' }),
    event: StringEnum(WEBHOOK_EVENTS),
    file_id: Type.String({ format: 'uuid' }),
    attempts: Type.Integer({ minimum: 0, description: 'Attempts made so far.' }),
    status: StringEnum(DELIVERY_STATUSES, {
      description: '`pending` (waiting for its next attempt), `delivered` (a 2xx), `failed` (out of attempts, or 410).',
    }),
    last_status: Nullable(Type.Integer({ description: 'HTTP status of the last attempt; null if none answered.' })),
    last_error: Nullable(Type.String({ description: 'What went wrong at the last attempt.' })),
    next_attempt_at: Nullable(Timestamp('When the next attempt is due; null unless pending.')),
    created_at: Timestamp('When the event happened.'),
    delivered_at: Nullable(Timestamp('When a 2xx was received.')),
  },
  { additionalProperties: false, $id: 'WebhookDelivery' },
);
export type WebhookDeliveryJson = Static<typeof WebhookDeliverySchema>;
