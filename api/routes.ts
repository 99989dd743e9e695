// The HTTP contract in one place: every route with its OpenAPI operation. The router and the
// OpenAPI document are both built from this table, so they cannot drift apart.
import Router from '@koa/router';
import type Koa from 'koa';
import { FileSchema, FILE_KINDS, FILE_STATUSES } from '../core/fileRecord.js';
import { WEBHOOK_EVENTS } from '../core/db/webhooks.js';
import { resultSchemas } from '../core/results/index.js';
import {
  DEFAULT_DELIVERY_LIMIT,
  DEFAULT_ENDPOINT_LIMIT,
  MAX_DELIVERY_LIMIT,
  MAX_ENDPOINT_LIMIT,
  NewWebhookEndpointSchema,
  WebhookDeliverySchema,
  WebhookEndpointChangeSchema,
  WebhookEndpointRequestSchema,
  WebhookEndpointSchema,
} from '../core/webhooks/schema.js';
import { DirectUploadRequestSchema } from './directUploads.js';
import { AppError, ERRORS, ProblemSchema, type ErrorCode } from './errors.js';
import {
  DEFAULT_LIMIT,
  LIST_PAGE_MAX_BYTES,
  MAX_ERROR_CODE_LENGTH,
  MAX_LIMIT,
  ReprocessFilesRequestSchema,
  ReprocessFilesResultSchema,
} from './listing.js';
import { MAX_WAIT_SECONDS } from './waiting.js';

type Method = 'get' | 'post' | 'patch' | 'delete' | 'head' | 'options';
type JsonObject = Record<string, unknown>;

export interface RouteDoc {
  operationId: string;
  method: Method;
  /** OpenAPI path template as the contract writes it; it is served with and without the trailing slash. */
  path: string;
  summary: string;
  description?: string;
  tags: string[];
  parameters?: JsonObject[];
  requestBody?: JsonObject;
  responses: Record<string, JsonObject>;
  /** Anyone may call it, and what lies below its path: auth lets it through, OpenAPI lists no security. */
  public?: boolean;
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: JsonObject, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

/** Responses for the given error codes, grouped by status, each listing its codes. */
function problems(...codes: ErrorCode[]): Record<string, JsonObject> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of [...codes, 'internal_error' as const]) {
    const status = ERRORS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, list]) => [
      String(status),
      {
        description: list.map((code) => `\`${code}\`: ${ERRORS[code].title}`).join('; '),
        content: { 'application/problem+json': { schema: ref('Problem') } },
      },
    ]),
  );
}

/** `responses` with `code` among them: added to the description of its status's response, or as a response of its own. */
function withProblem(responses: Record<string, JsonObject>, code: ErrorCode): Record<string, JsonObject> {
  const status = String(ERRORS[code].status);
  const existing = responses[status];
  if (!existing) return { ...responses, ...problems(code) };
  const description = String(existing.description);
  if (description.includes(`\`${code}\``)) return responses;
  return { ...responses, [status]: { ...existing, description: `${description}; \`${code}\`: ${ERRORS[code].title}` } };
}

/** A page of a keyset-paginated list: its items, and the URL of the next page. */
const pageOf = (item: string) => ({
  type: 'object',
  required: ['results', 'next'],
  properties: {
    results: { type: 'array', items: ref(item) },
    next: { type: ['string', 'null'], format: 'uri', description: 'The next page, or null on the last one.' },
  },
});

const idParameter = {
  name: 'id',
  in: 'path',
  required: true,
  description: 'The file id (a UUID, in any case). Unknown and malformed ids both answer 404.',
  schema: { type: 'string' },
};

const idempotencyKeyParameter = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    'Makes retries safe: a retry with the same key and the same bytes (the same `sha256`) answers what the first request ' +
    'created (201, `Idempotent-Replayed: true`) for 24 hours; the same key with other bytes answers 422; while the first ' +
    'request runs, 409.',
  schema: { type: 'string', minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' },
};

const webhookIdParameter = {
  ...idParameter,
  description: 'The webhook endpoint id (a UUID, in any case). Unknown and malformed ids both answer 404.',
};

export const ROUTES = [
  {
    operationId: 'uploadFile',
    method: 'post',
    path: '/upload/',
    summary: 'Upload a file',
    description:
      'Streams the file to storage while hashing it, detects its kind from the bytes, records it and queues it for processing. ' +
      'Answers 201 with the File; poll `GET /files/{id}/` (or the list) until `status` is `processed` or `failed`.',
    tags: ['files'],
    parameters: [idempotencyKeyParameter],
    requestBody: {
      required: true,
      content: {
        'multipart/form-data': {
          schema: {
            type: 'object',
            required: ['file'],
            properties: {
              file: { type: 'string', format: 'binary', description: 'The file; exactly one part named `file`.' },
            },
          },
          encoding: { file: { contentType: 'application/octet-stream' } },
        },
      },
    },
    responses: {
      '201': {
        ...json(ref('File'), 'The file was stored and queued.'),
        headers: { Location: { description: 'URL of the new File.', schema: { type: 'string', format: 'uri' } } },
      },
      ...problems(
        'file_missing',
        'file_empty',
        'too_many_files',
        'invalid_multipart',
        'invalid_idempotency_key',
        'idempotency_key_in_use',
        'idempotency_key_reused',
        'request_timeout',
        'file_too_large',
        'unsupported_media_type',
        'rate_limited',
        'service_unavailable',
        'overloaded',
        'insufficient_storage',
        'storage_unavailable',
      ),
    },
  },
  {
    operationId: 'createUpload',
    method: 'post',
    path: '/uploads/',
    summary: 'Start a direct upload (S3 blob store)',
    description:
      'Announces a file and answers a presigned PUT that sends its bytes straight to the bucket, bypassing the API; its ' +
      '`Content-Length` and `If-None-Match: *` are signed in, so exactly `size` bytes are accepted, once: the bucket ' +
      'answers 412 to a PUT once the object exists (a PUT retried after one that succeeded: complete the upload). Send ' +
      'them with `method`, `url` and `headers` before `expires_at`, then POST `complete_url`. The worker checks the ' +
      'bytes against `sha256`: a mismatch ends the File `failed` with `checksum_mismatch`. With the disk blob store, 501 ' +
      '`direct_uploads_unavailable`.',
    tags: ['uploads'],
    parameters: [idempotencyKeyParameter],
    requestBody: {
      required: true,
      content: { 'application/json': { schema: ref('DirectUploadRequest') } },
    },
    responses: {
      '201': json(ref('DirectUpload'), 'The upload is open: PUT the bytes, then complete it.'),
      ...problems(
        'invalid_body',
        'file_empty',
        'invalid_idempotency_key',
        'idempotency_key_in_use',
        'idempotency_key_reused',
        'file_too_large',
        'unsupported_media_type',
        'rate_limited',
        'direct_uploads_unavailable',
        'service_unavailable',
        'storage_unavailable',
      ),
    },
  },
  {
    operationId: 'completeUpload',
    method: 'post',
    path: '/uploads/{id}/complete',
    summary: 'Complete a direct upload',
    description:
      'Checks that the object has the announced size, detects its kind from its first bytes, records the File and queues ' +
      'it: 201 with the File (`queued`), whose id is the upload id. Completing again answers the same File ' +
      '(`Idempotent-Replayed: true`); an upload becomes one File at most.',
    tags: ['uploads'],
    parameters: [{ ...idParameter, description: 'The upload id (the id of the File it becomes).' }],
    responses: {
      '201': {
        ...json(ref('File'), 'The file was recorded and queued.'),
        headers: { Location: { description: 'URL of the new File.', schema: { type: 'string', format: 'uri' } } },
      },
      ...problems(
        'not_found',
        'upload_incomplete',
        'size_mismatch',
        'direct_uploads_unavailable',
        'service_unavailable',
        'storage_unavailable',
      ),
    },
  },
  {
    operationId: 'tusOptions',
    method: 'options',
    path: '/uploads/tus/',
    summary: 'Resumable uploads (tus 1.0.0): what the server supports',
    description:
      'The tus protocol (https://tus.io/protocols/resumable-upload): `Tus-Version`, `Tus-Extension` (creation, ' +
      'creation-with-upload, termination, expiration, checksum), `Tus-Max-Size` (MAX_UPLOAD_BYTES) and ' +
      '`Tus-Checksum-Algorithm`. Any tus client (tus-js-client, Uppy, tuspy, tus-java-client) speaks it.',
    tags: ['uploads'],
    responses: { '204': { description: 'The tus headers.' } },
  },
  {
    operationId: 'tusCreate',
    method: 'post',
    path: '/uploads/tus/',
    summary: 'Resumable uploads (tus): create an upload',
    description:
      '`Upload-Length` and `Upload-Metadata` (`filename <base64>`), optionally the first bytes (creation-with-upload, ' +
      '`Content-Type: application/offset+octet-stream`). 201 with `Location`, the upload URL, whose last segment is ' +
      'the id of the File the upload becomes once its last byte arrives (`GET /files/{id}/` answers 404 until then), ' +
      'and `Upload-Expires` (TUS_EXPIRE_AFTER_MS).',
    tags: ['uploads'],
    responses: {
      '201': { description: 'Created; `Location` is the upload URL.' },
      ...problems('invalid_tus_request', 'file_too_large', 'tus_version_unsupported', 'upload_checksum_mismatch'),
    },
  },
  {
    operationId: 'tusOffset',
    method: 'head',
    path: '/uploads/tus/{id}',
    summary: 'Resumable uploads (tus): the offset to resume from',
    description:
      '`Upload-Offset` and `Upload-Length`; any API pod answers for any upload. A finished upload answers its length.',
    tags: ['uploads'],
    parameters: [{ ...idParameter, description: 'The upload id (the id of the File it becomes).' }],
    responses: { '200': { description: '`Upload-Offset`, `Upload-Length`.' }, ...problems('not_found') },
  },
  {
    operationId: 'tusAppend',
    method: 'patch',
    path: '/uploads/tus/{id}',
    summary: 'Resumable uploads (tus): append bytes at the offset',
    description:
      "`Upload-Offset` must be the upload's offset (else 409), `Content-Type: application/offset+octet-stream`. With " +
      '`Upload-Checksum: <sha1|sha256|md5> <base64>`, the chunk is verified before it is stored: a mismatch answers 460 ' +
      'and the offset does not move. While another request holds the upload, 423. The request that stores the last ' +
      'byte records the File (hashed, sniffed, queued) before it answers 204.',
    tags: ['uploads'],
    parameters: [{ ...idParameter, description: 'The upload id.' }],
    responses: {
      '204': { description: 'Stored; `Upload-Offset` is the new offset.' },
      ...problems(
        'invalid_tus_request',
        'not_found',
        'upload_offset_mismatch',
        'file_too_large',
        'unsupported_media_type',
        'upload_locked',
        'upload_checksum_mismatch',
        'service_unavailable',
        'storage_unavailable',
      ),
    },
  },
  {
    operationId: 'tusTerminate',
    method: 'delete',
    path: '/uploads/tus/{id}',
    summary: 'Resumable uploads (tus): abandon an unfinished upload',
    description: 'Removes the upload and its bytes at once (termination). A finished upload is a File: delete that.',
    tags: ['uploads'],
    parameters: [{ ...idParameter, description: 'The upload id.' }],
    responses: { '204': { description: 'Removed.' }, ...problems('not_found', 'invalid_tus_request') },
  },
  {
    operationId: 'listFiles',
    method: 'get',
    path: '/files/',
    summary: 'List files, newest first',
    description:
      'Keyset pagination: follow `next` until it is null. The cost of a page does not grow with the table or the page number. ' +
      `A page holds \`limit\` files at most, and fewer when their records pass ${LIST_PAGE_MAX_BYTES / (1024 * 1024)} MiB ` +
      '(results, errors and names as JSON): the file that crosses it is the last, so a page always has one file, and ' +
      '`next` goes on after it.',
    tags: ['files'],
    parameters: [
      {
        name: 'limit',
        in: 'query',
        schema: { type: 'integer', minimum: 1, maximum: MAX_LIMIT, default: DEFAULT_LIMIT },
      },
      { name: 'cursor', in: 'query', description: 'Opaque; taken from `next`.', schema: { type: 'string' } },
      { name: 'status', in: 'query', schema: { type: 'string', enum: [...FILE_STATUSES] } },
      { name: 'processed', in: 'query', schema: { type: 'boolean' } },
      { name: 'kind', in: 'query', schema: { type: 'string', enum: [...FILE_KINDS] } },
      {
        name: 'error_code',
        in: 'query',
        description: 'Only files whose last failure had this `error.code` (such as `processing_failed`).',
        schema: { type: 'string', minLength: 1, maxLength: MAX_ERROR_CODE_LENGTH },
      },
      {
        name: 'uploaded_before',
        in: 'query',
        description: 'Only files uploaded strictly before this instant (RFC 3339).',
        schema: { type: 'string', format: 'date-time' },
      },
    ],
    responses: {
      '200': json(ref('FileList'), 'A page of files.'),
      ...problems('invalid_query'),
    },
  },
  {
    operationId: 'getFile',
    method: 'get',
    path: '/files/{id}/',
    summary: 'Get one file',
    description:
      'With `wait`, waits for the file to be `processed` or `failed` instead of polling: answers as soon as it is, ' +
      'or after `wait` seconds with its current state.',
    tags: ['files'],
    parameters: [
      idParameter,
      {
        name: 'wait',
        in: 'query',
        required: false,
        description:
          'Seconds to wait for the file to be `processed` or `failed`; 200 either way. When too many requests are ' +
          'waiting on the server, 429 with `Retry-After`. Ignored where waiting is turned off (`MAX_WAITERS=0`).',
        schema: { type: 'integer', minimum: 1, maximum: MAX_WAIT_SECONDS },
      },
    ],
    responses: {
      '200': json(ref('File'), 'The file.'),
      ...problems('invalid_query', 'not_found', 'rate_limited'),
    },
  },
  {
    operationId: 'getContent',
    method: 'get',
    path: '/files/{id}/content',
    summary: 'Download the original bytes',
    description:
      'Always an attachment (`Content-Disposition`), never sniffed or rendered (`nosniff`, `Content-Security-Policy: sandbox`). ' +
      'The strong `ETag` is the sha256: `If-None-Match` answers 304. A single `Range` answers 206.',
    tags: ['files'],
    parameters: [
      idParameter,
      { name: 'Range', in: 'header', required: false, schema: { type: 'string', examples: ['bytes=0-1023'] } },
      { name: 'If-None-Match', in: 'header', required: false, schema: { type: 'string' } },
    ],
    responses: {
      '200': {
        description: 'The bytes.',
        content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
      },
      '206': {
        description: 'The requested range.',
        content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } },
      },
      '304': { description: 'Not modified: the client has these bytes.' },
      ...problems(
        'file_infected',
        'file_unscannable',
        'not_found',
        'scan_pending',
        'range_not_satisfiable',
        'storage_unavailable',
      ),
    },
  },
  {
    operationId: 'getThumbnail',
    method: 'get',
    path: '/files/{id}/thumbnail',
    summary: 'Download the thumbnail',
    description:
      'A WebP rendering, upright and at most 256 px on its longer side (never enlarged), for files whose `thumbnail` is set: ' +
      'processed images, PDFs (the first page), videos (a poster frame) and audio (a waveform). ' +
      '404 where there is none.',
    tags: ['files'],
    parameters: [idParameter],
    responses: {
      '200': {
        description: 'The rendering.',
        content: { 'image/webp': { schema: { type: 'string', format: 'binary' } } },
      },
      ...problems('file_infected', 'file_unscannable', 'not_found', 'scan_pending', 'storage_unavailable'),
    },
  },
  {
    operationId: 'getPreview',
    method: 'get',
    path: '/files/{id}/preview',
    summary: 'Download the preview',
    description:
      'A WebP rendering, upright and at most 1024 px on its longer side (never enlarged), for files whose `preview` is set: ' +
      'processed images, PDFs (the first page), videos (a poster frame) and audio (a waveform). ' +
      '404 where there is none.',
    tags: ['files'],
    parameters: [idParameter],
    responses: {
      '200': {
        description: 'The rendering.',
        content: { 'image/webp': { schema: { type: 'string', format: 'binary' } } },
      },
      ...problems('file_infected', 'file_unscannable', 'not_found', 'scan_pending', 'storage_unavailable'),
    },
  },
  {
    operationId: 'deleteFile',
    method: 'delete',
    path: '/files/{id}/',
    summary: 'Delete a file',
    description:
      'Removes the record, the bytes and derived files. A job still in flight finds nothing and stops quietly.',
    tags: ['files'],
    parameters: [idParameter],
    responses: { '204': { description: 'Deleted.' }, ...problems('not_found', 'storage_unavailable') },
  },
  {
    operationId: 'reprocessFile',
    method: 'post',
    path: '/files/{id}/reprocess',
    summary: 'Process a file again',
    description:
      'Puts the file back in the queue (`status` becomes `queued`), e.g. after a failure or a processor upgrade.',
    tags: ['files'],
    parameters: [idParameter],
    responses: { '202': json(ref('File'), 'Queued again.'), ...problems('not_found', 'file_processing') },
  },
  {
    operationId: 'reprocessFiles',
    method: 'post',
    path: '/files/reprocess',
    summary: 'Process the files matching filters again (bulk retry)',
    description:
      'Puts back in the queue, as `POST /files/{id}/reprocess` does one, up to `limit` settled files matching the ' +
      'filters, oldest upload first: by default the `failed` ones. Queued and processing files are never taken, so a ' +
      'file re-queued is left alone by the same call repeated while it waits. When more match than `limit`, ' +
      '`next_cursor` says where to go on from: send the same body with it as `cursor` until it is null. A file that ' +
      'fails again meanwhile lies behind the cursor and is not taken twice in one walk; `uploaded_before` fixes where ' +
      'the walk ends. With `dry_run`, 200 and the count of the files the call would take (`limit` at most), nothing ' +
      'changed. The filters match `GET /files/` with the same parameters (`status`, `kind`, `error_code`, ' +
      '`uploaded_before`), so a client can see what a call would take. No webhook event is sent for the re-queue.',
    tags: ['files'],
    requestBody: { required: true, content: { 'application/json': { schema: ref('ReprocessFilesRequest') } } },
    responses: {
      '200': json(ref('ReprocessFilesResult'), 'A dry run: what the call would take; nothing changed.'),
      '202': json(ref('ReprocessFilesResult'), 'The files taken are queued again.'),
      ...problems('invalid_body', 'unsupported_media_type', 'rate_limited', 'service_unavailable', 'overloaded'),
    },
  },
  {
    operationId: 'createWebhook',
    method: 'post',
    path: '/webhooks/',
    summary: 'Register a webhook endpoint',
    description:
      'From now on, each File that settles (`file.processed`, `file.failed`) or is deleted (`file.deleted`) is POSTed to ' +
      'the URL as `{"type", "timestamp", "data": File}`, for the events chosen, signed as Standard Webhooks says with ' +
      'the `secret` of this answer, which is shown only here. Delivery is at least once: a 2xx within 10 s is success, ' +
      'anything else is retried with backoff for about a day. A URL that is not https, carries credentials, or resolves ' +
      'to a loopback, private, link-local or metadata address answers 422 `webhook_url_forbidden` (unless the operator ' +
      'allows it). The service keeps at most MAX_WEBHOOK_ENDPOINTS endpoints (100 by default), enabled or not, whoever ' +
      'registered them: past it, 409 `webhook_limit_reached` until one is deleted.',
    tags: ['webhooks'],
    requestBody: { required: true, content: { 'application/json': { schema: ref('WebhookEndpointRequest') } } },
    responses: {
      '201': {
        ...json(ref('NewWebhookEndpoint'), 'The endpoint, with its signing secret.'),
        headers: {
          Location: { description: 'URL of the new endpoint.', schema: { type: 'string', format: 'uri' } },
        },
      },
      ...problems('invalid_body', 'unsupported_media_type', 'webhook_url_forbidden', 'webhook_limit_reached'),
    },
  },
  {
    operationId: 'listWebhooks',
    method: 'get',
    path: '/webhooks/',
    summary: 'List webhook endpoints, oldest first',
    description: 'Without their secrets. Keyset pagination: follow `next` until it is null.',
    tags: ['webhooks'],
    parameters: [
      {
        name: 'limit',
        in: 'query',
        schema: { type: 'integer', minimum: 1, maximum: MAX_ENDPOINT_LIMIT, default: DEFAULT_ENDPOINT_LIMIT },
      },
      { name: 'cursor', in: 'query', description: 'Opaque; taken from `next`.', schema: { type: 'string' } },
    ],
    responses: {
      '200': json(ref('WebhookEndpointList'), 'A page of endpoints.'),
      ...problems('invalid_query'),
    },
  },
  {
    operationId: 'getWebhook',
    method: 'get',
    path: '/webhooks/{id}/',
    summary: 'Get one webhook endpoint',
    tags: ['webhooks'],
    parameters: [webhookIdParameter],
    responses: { '200': json(ref('WebhookEndpoint'), 'The endpoint.'), ...problems('not_found') },
  },
  {
    operationId: 'updateWebhook',
    method: 'patch',
    path: '/webhooks/{id}/',
    summary: 'Change a webhook endpoint',
    description:
      'Changes the fields given. `enabled: false` stops recording events for it (`disabled_reason: manual`); ' +
      '`enabled: true` enables it again, whatever disabled it, and its deliveries still pending are sent. A new `url` ' +
      'is checked as at registration. Events are recorded only for endpoints enabled when the change to the File commits.',
    tags: ['webhooks'],
    parameters: [webhookIdParameter],
    requestBody: { required: true, content: { 'application/json': { schema: ref('WebhookEndpointChange') } } },
    responses: {
      '200': json(ref('WebhookEndpoint'), 'The endpoint, changed.'),
      ...problems('invalid_body', 'not_found', 'unsupported_media_type', 'webhook_url_forbidden'),
    },
  },
  {
    operationId: 'deleteWebhook',
    method: 'delete',
    path: '/webhooks/{id}/',
    summary: 'Delete a webhook endpoint',
    description: 'Removes the endpoint and its deliveries; those still pending are not sent.',
    tags: ['webhooks'],
    parameters: [webhookIdParameter],
    responses: { '204': { description: 'Deleted.' }, ...problems('not_found') },
  },
  {
    operationId: 'listWebhookDeliveries',
    method: 'get',
    path: '/webhooks/{id}/deliveries/',
    summary: "List an endpoint's deliveries, newest first",
    description:
      'What was sent, or is to be, and how it went. Keyset pagination: follow `next` until it is null. Delivered and ' +
      'failed deliveries are kept for WEBHOOK_RETENTION_MS (7 days by default).',
    tags: ['webhooks'],
    parameters: [
      webhookIdParameter,
      {
        name: 'limit',
        in: 'query',
        schema: { type: 'integer', minimum: 1, maximum: MAX_DELIVERY_LIMIT, default: DEFAULT_DELIVERY_LIMIT },
      },
      { name: 'cursor', in: 'query', description: 'Opaque; taken from `next`.', schema: { type: 'string' } },
    ],
    responses: {
      '200': json(ref('WebhookDeliveryList'), 'A page of deliveries.'),
      ...problems('invalid_query', 'not_found'),
    },
  },
  {
    operationId: 'retryWebhookDelivery',
    method: 'post',
    path: '/webhooks/{id}/deliveries/{delivery_id}/retry',
    summary: 'Send a delivery again now',
    description:
      'Makes the delivery `pending` and due now, whatever became of it: one more attempt for a `failed` one, at once ' +
      'for one waiting for its next attempt, again for a `delivered` one. It keeps its id, so the `webhook-id` is the ' +
      'same. A disabled endpoint gets it once enabled again.',
    tags: ['webhooks'],
    parameters: [
      webhookIdParameter,
      {
        name: 'delivery_id',
        in: 'path',
        required: true,
        description: 'The delivery id. Unknown and malformed ids both answer 404.',
        schema: { type: 'string' },
      },
    ],
    responses: { '202': json(ref('WebhookDelivery'), 'Due now.'), ...problems('not_found') },
  },
  {
    operationId: 'getOpenApi',
    method: 'get',
    path: '/openapi.json',
    summary: 'This document',
    tags: ['meta'],
    public: true,
    responses: { '200': json({ type: 'object' }, 'The OpenAPI 3.1 document.') },
  },
  {
    operationId: 'getDocs',
    method: 'get',
    path: '/docs',
    summary: 'Interactive documentation',
    tags: ['meta'],
    public: true,
    responses: {
      '200': {
        description: 'An HTML page where a person can read the contract and try it.',
        content: { 'text/html': {} },
      },
    },
  },
  {
    operationId: 'getUploadPage',
    method: 'get',
    path: '/docs/upload',
    summary: 'A page to try a resumable upload',
    description:
      'Uploads a file from the browser with tus-js-client to `/uploads/tus/` (5 MiB chunks, retried, resumed when ' +
      'the same file is chosen again), then waits on its File until it is processed or failed. The page is public; ' +
      'its upload needs a bearer token (a field on the page) when the service has tokens.',
    tags: ['meta'],
    public: true,
    responses: {
      '200': { description: 'An HTML page.', content: { 'text/html': {} } },
    },
  },
] as const satisfies readonly RouteDoc[];

export type OperationId = (typeof ROUTES)[number]['operationId'];
export type Handlers = Record<OperationId, Koa.Middleware>;

const PATHS = new Map((ROUTES as readonly RouteDoc[]).map((route) => [route.operationId, route.path]));

/** The absolute URL of an operation's path, its `{name}` parameters filled in; `base` is the API's origin. */
export function routeUrl(base: string, operationId: OperationId, params: Record<string, string> = {}): string {
  const template = PATHS.get(operationId)!;
  return base + template.replace(/\{(\w+)\}/g, (_, name: string) => encodeURIComponent(params[name] ?? ''));
}

/** A path parameter as the router matched it ('' when the route has none by that name). */
export const pathParam = (ctx: Koa.Context, name: string): string =>
  (ctx.params as Record<string, string | undefined>)[name] ?? '';

const PUBLIC_PATHS = (ROUTES as readonly RouteDoc[]).filter((route) => route.public).map((route) => route.path);

/** A path anyone may read: a public route, or below one (the docs page's assets). */
export const isPublicPath = (path: string): boolean =>
  PUBLIC_PATHS.some((prefix) => path === prefix || path.startsWith(`${prefix}/`));

/** Mounts every route of the table; the router also answers 405 (with `Allow`) and OPTIONS. */

export function buildRouter(handlers: Handlers): Router {
  const router = new Router();
  for (const route of ROUTES as readonly RouteDoc[]) {
    // Requests arrive with any trailing slash already stripped (see app.ts).
    const path = route.path.replace(/\{(\w+)\}/g, ':$1').replace(/(.)\/$/, '$1');
    const handler = handlers[route.operationId as OperationId];
    router.register(path, [route.method.toUpperCase()], route.public ? handler : [onlyItsQuery(route), handler], {
      name: route.operationId,
    });
  }
  return router;
}

/** A query parameter the route does not take answers 400: a misspelt filter must not quietly list every file. */
function onlyItsQuery(route: RouteDoc): Koa.Middleware {
  const taken = (route.parameters ?? [])
    .filter((parameter) => parameter.in === 'query')
    .map(({ name }) => String(name));
  return async (ctx, next) => {
    const unknown = Object.keys(ctx.query).filter((name) => !taken.includes(name));
    if (unknown.length > 0) {
      const message =
        taken.length > 0 ? `Not a parameter of this route (${taken.join(', ')}).` : 'This route takes no query.';
      throw new AppError('invalid_query', "Some query parameters are not this route's; see `errors`.", {
        errors: unknown.map((field) => ({ field, message })),
      });
    }
    await next();
  };
}

/** The OpenAPI 3.1 document, built from the table and the shared schemas. */
export function openApiDocument(version: string): JsonObject {
  const paths: Record<string, Record<string, JsonObject>> = {};
  for (const { method, path, public: isPublic, ...operation } of ROUTES as readonly RouteDoc[]) {
    // Every guarded route may answer 401, and 400 invalid_query to a query parameter it does not take.
    const guarded = isPublic
      ? { security: [] }
      : { responses: withProblem(withProblem(operation.responses, 'unauthorized'), 'invalid_query') };
    paths[path] = { ...paths[path], [method]: { ...operation, ...guarded } };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'file-processor',
      version,
      description:
        'Upload files over HTTP; each is processed asynchronously by kind, and its record says what was found. ' +
        'Every path works with and without a trailing slash. Errors are RFC 9457 problem+json with a stable `code`. ' +
        'Try a resumable upload from the browser at [/docs/upload](/docs/upload).',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    servers: [{ url: '/' }],
    security: [{ bearer: [] }],
    tags: [
      { name: 'files', description: 'The File resource.' },
      { name: 'uploads', description: 'Direct uploads: the bytes go straight to the bucket.' },
      { name: 'webhooks', description: 'Being told when a File is processed, failed or deleted.' },
      { name: 'meta', description: 'The contract itself.' },
    ],
    paths,
    webhooks: webhookEvents(),
    components: {
      schemas: {
        File: withResultPerKind(stripId(FileSchema)),
        ...Object.fromEntries(resultSchemas().map(([, schema]) => [schema.title, stripId(schema)])),
        FileList: pageOf('File'),
        DirectUploadRequest: stripId(DirectUploadRequestSchema),
        DirectUpload: {
          type: 'object',
          required: ['id', 'method', 'url', 'headers', 'expires_at', 'complete_url'],
          properties: {
            id: { type: 'string', format: 'uuid', description: 'The upload id, and the id of the File it becomes.' },
            method: { type: 'string', enum: ['PUT'] },
            url: { type: 'string', format: 'uri', description: 'The presigned URL to send the bytes to.' },
            headers: {
              type: 'object',
              additionalProperties: { type: 'string' },
              description: 'Headers to send with them, all signed in: `Content-Length` and `If-None-Match: *`.',
            },
            expires_at: {
              type: 'string',
              format: 'date-time',
              description: 'After this, the URL and the upload expire.',
            },
            complete_url: { type: 'string', format: 'uri', description: 'POST here once the bytes are sent.' },
          },
        },
        ReprocessFilesRequest: stripId(ReprocessFilesRequestSchema),
        ReprocessFilesResult: stripId(ReprocessFilesResultSchema),
        WebhookEndpointRequest: stripId(WebhookEndpointRequestSchema),
        WebhookEndpointChange: stripId(WebhookEndpointChangeSchema),
        WebhookEndpoint: stripId(WebhookEndpointSchema),
        NewWebhookEndpoint: stripId(NewWebhookEndpointSchema),
        WebhookEndpointList: pageOf('WebhookEndpoint'),
        WebhookDelivery: stripId(WebhookDeliverySchema),
        WebhookDeliveryList: pageOf('WebhookDelivery'),
        WebhookEvent: {
          type: 'object',
          required: ['type', 'timestamp', 'data'],
          properties: {
            type: { type: 'string', enum: [...WEBHOOK_EVENTS] },
            timestamp: { type: 'string', format: 'date-time', description: 'When the change committed.' },
            data: {
              ...ref('File'),
              description: 'The File as it was right after the change (before, for a deletion).',
            },
          },
        },
        Problem: stripId(ProblemSchema),
      },
      securitySchemes: {
        bearer: {
          type: 'http',
          scheme: 'bearer',
          description: 'Required only when the service is configured with API_TOKENS or API_TOKENS_FILE.',
        },
      },
    },
  };
}

/** What the service POSTs to a webhook endpoint, one operation per event (OpenAPI 3.1 `webhooks`). */
function webhookEvents(): JsonObject {
  const header = (name: string, description: string) => ({
    name,
    in: 'header',
    required: true,
    description,
    schema: { type: 'string' },
  });
  const parameters = [
    header('webhook-id', 'The delivery id: the same on every retry of this delivery; deduplicate on it.'),
    header('webhook-timestamp', 'Seconds since the epoch when this attempt was signed; refuse old ones (5 minutes).'),
    header(
      'webhook-signature',
      '`v1,` and the base64 HMAC-SHA256 of `<webhook-id>.<webhook-timestamp>.<body>`, keyed with the base64-decoded ' +
        'part of the secret after `whsec_` (Standard Webhooks).',
    ),
  ];
  return Object.fromEntries(
    WEBHOOK_EVENTS.map((event) => [
      event,
      {
        post: {
          operationId: `on_${event.replace('.', '_')}`,
          summary: `The ${event} event, sent to the endpoints subscribed to it`,
          description:
            'At least once, signed as Standard Webhooks specifies. A 2xx within 10 s is success; anything else (a ' +
            'redirect included: they are not followed) is retried with exponential backoff for about a day.',
          tags: ['webhooks'],
          parameters,
          requestBody: { required: true, content: { 'application/json': { schema: ref('WebhookEvent') } } },
          responses: {
            '2XX': { description: 'Received.' },
            '410': { description: 'Gone: the endpoint is disabled and gets no more events.' },
          },
        },
      },
    ]),
  );
}

/** The File's `result` as one of the kinds' result schemas (components named by their titles), or null. */
function withResultPerKind(file: JsonObject): JsonObject {
  const byKind = resultSchemas().map(([kind, schema]) => `\`${kind}\`: ${schema.title}`);
  const result = {
    description: `What processing found; null until the file is processed. Its shape depends on \`kind\` (${byKind.join(', ')}).`,
    anyOf: [...resultSchemas().map(([, schema]) => ref(schema.title)), { type: 'null' }],
  };
  return { ...file, properties: { ...(file.properties as JsonObject), result } };
}

/** TypeBox schemas carry `$id`, which OpenAPI components name by key instead. */
function stripId(schema: object): JsonObject {
  const { $id: _ignored, ...rest } = JSON.parse(JSON.stringify(schema)) as JsonObject;
  return rest;
}
