// @ts-check
// What every script shares: configuration from the environment, request headers, requests that honour
// the service's back-pressure (429/503 with Retry-After), and the end-of-run summary.
//
// Needs k6 v0.48 or later. Before v0.53 k6 put every ES module through its built-in Babel 6, whose parser
// stops at ES2017: object spread and rest (`{ ...x }`), `?.`, `??`, `catch {` without a binding and class
// fields fail there with `SyntaxError: Unexpected token`. So the scripts are ES2017 (Object.assign where a
// spread would do), and test/support/k6-shim.ts refuses any later syntax.
// __ITER exists only inside a VU's iteration (the init context, setup(), teardown() and handleSummary() get a
// ReferenceError) and __VU is 0 outside one, so nothing shared reads either.
import { check, sleep } from 'k6';
import { randomBytes } from 'k6/crypto';
import http from 'k6/http';
import { Counter, Rate } from 'k6/metrics';

/** @typedef {import('k6/http').Response} Response */
/** @typedef {import('k6/options').Threshold} Threshold */
/** @typedef {import('k6/options').Stage} Stage */
/** @typedef {{ bytes: ArrayBuffer | string, name: string, contentType: string, kind: string }} Payload */
/** @typedef {{ [tag: string]: string }} Tags */

/**
 * A variable from `-e NAME=value` (or the environment), or the fallback when unset or empty.
 * @param {string} name
 * @param {string} fallback
 */
export function env(name, fallback) {
  const value = __ENV[name];
  return value === undefined || value === '' ? fallback : value;
}

/**
 * @param {string} name
 * @param {number} fallback
 */
export function envNumber(name, fallback) {
  const raw = env(name, '');
  if (raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} must be a number of at least 0, not "${raw}".`);
  return value;
}

/**
 * A constant-arrival-rate scenario: `rate` iterations a second (the variable `rateVariable` moves it, RATE by
 * default) for `duration`, on PRE_VUS (default `preVUs`, else 20) up to MAX_VUS (default `maxVUs`) VUs.
 * @param {{ rate: number, rateVariable?: string, duration: string, preVUs?: number, maxVUs: number, exec?: string }} o
 * @returns {import('k6/options').ConstantArrivalRateScenario}
 */
export function constantArrivalRate(o) {
  /** @type {import('k6/options').ConstantArrivalRateScenario} */
  const scenario = {
    executor: 'constant-arrival-rate',
    rate: envNumber(o.rateVariable || 'RATE', o.rate),
    timeUnit: '1s',
    duration: o.duration,
    preAllocatedVUs: envNumber('PRE_VUS', o.preVUs || 20),
    maxVUs: envNumber('MAX_VUS', o.maxVUs),
  };
  if (o.exec) scenario.exec = o.exec;
  return scenario;
}

/**
 * @param {string} name
 * @param {boolean} fallback
 */
function envFlag(name, fallback) {
  const raw = env(name, '').toLowerCase();
  if (raw === '') return fallback;
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true;
  if (['0', 'false', 'no', 'off'].includes(raw)) return false;
  throw new Error(`${name} must be true or false, not "${raw}".`);
}

/**
 * Stages written `duration:target,...` (`30s:50,1m:200,30s:0`): ramp to each target over its duration.
 * @param {string} name
 * @param {string} fallback
 * @returns {Stage[]}
 */
export function envStages(name, fallback) {
  const raw = env(name, fallback);
  return raw.split(',').map((stage) => {
    const match = /^\s*(\d+(?:\.\d+)?(?:ms|s|m|h)(?:\d+(?:ms|s|m))*)\s*:\s*(\d+)\s*$/.exec(stage);
    if (!match) throw new Error(`${name} must read like "30s:50,1m:200,30s:0" (duration:target, ...), not "${raw}".`);
    return { duration: String(match[1]), target: Number(match[2]) };
  });
}

/**
 * Weights written `name:weight,...` (`text:70,image:20`), keeping the order given.
 * @param {string} name
 * @param {string} fallback
 * @returns {Array<{ name: string, weight: number }>}
 */
export function envWeights(name, fallback) {
  const raw = env(name, fallback);
  return raw.split(',').map((entry) => {
    const match = /^\s*([a-z_]+)\s*:\s*(\d+(?:\.\d+)?)\s*$/.exec(entry);
    if (!match) throw new Error(`${name} must read like "text:70,image:20" (name:weight, ...), not "${raw}".`);
    return { name: String(match[1]), weight: Number(match[2]) };
  });
}

/**
 * Milliseconds in a k6 duration (`90s`, `1h30m`, `500ms`).
 * @param {string} duration
 */
export function durationMs(duration) {
  const units = { h: 3600000, m: 60000, s: 1000, ms: 1 };
  const parts = [...duration.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)];
  if (parts.length === 0 || parts.map((part) => part[0]).join('') !== duration)
    throw new Error(`"${duration}" is not a duration like 90s, 5m or 1h30m.`);
  return parts.reduce((sum, part) => sum + Number(part[1]) * units[/** @type {'h' | 'm' | 's' | 'ms'} */ (part[2])], 0);
}

export const BASE_URL = env('BASE_URL', 'http://localhost:8080').replace(/\/+$/, '');
export const API_TOKEN = env('API_TOKEN', '');
/** Sends an Idempotency-Key with each upload, so a retry after a timeout or a 502 cannot store the file twice. */
export const IDEMPOTENCY = envFlag('IDEMPOTENCY', false);
export const MAX_RETRIES = envNumber('MAX_RETRIES', 3);
/** The longest Retry-After we honour, in seconds: a load test should measure, not wait out an outage. */
export const RETRY_MAX_WAIT = envNumber('RETRY_MAX_WAIT', 10);
/** Prefix of every X-Request-Id, so a run's requests can be found in the service's logs. */
export const RUN_ID = env('RUN_ID', 'k6');
/** The share of failed requests, checks, uploads (and processings) a run may have and still pass. */
export const MAX_ERROR_RATE = envNumber('MAX_ERROR_RATE', 0.01);

const retries = new Counter('retries');
const uploadsOk = new Rate('uploads_ok');

/**
 * Drawn in the init context, which every VU (and setup(), teardown()) runs on its own: it tells their
 * requests apart where __VU and __ITER cannot be read.
 */
const RUNTIME_ID = hex(new Uint8Array(randomBytes(6)));
let requestCount = 0;

/**
 * A request id the service accepts (`[A-Za-z0-9._:-]{1,128}`) and echoes in its logs and errors, unique in the
 * run: `<RUN_ID>.<script>.<runtime>.<n>`. A long RUN_ID is cut, never the unique end.
 * @param {string} script
 */
function requestId(script) {
  requestCount += 1;
  const unique = `${RUNTIME_ID}.${requestCount}`;
  return `${`${RUN_ID}.${script}`.slice(0, 127 - unique.length)}.${unique}`;
}

/** @param {Uint8Array} bytes */
function hex(bytes) {
  return Array.from(bytes, (byte) => (byte + 0x100).toString(16).slice(1)).join('');
}

/** A random UUID (version 4), from k6's own random source. */
function uuid() {
  const bytes = new Uint8Array(randomBytes(16));
  bytes[6] = ((bytes[6] || 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] || 0) & 0x3f) | 0x80;
  const digits = hex(bytes);
  return `${digits.slice(0, 8)}-${digits.slice(8, 12)}-${digits.slice(12, 16)}-${digits.slice(16, 20)}-${digits.slice(20)}`;
}

/**
 * Headers of every request: a request id, and the bearer token when one is configured.
 * @param {string} script
 * @param {Record<string, string>} [extra]
 * @returns {Record<string, string>}
 */
export function headers(script, extra = {}) {
  /** @type {Record<string, string>} */
  const all = Object.assign({ 'X-Request-Id': requestId(script) }, extra);
  if (API_TOKEN) all.Authorization = `Bearer ${API_TOKEN}`;
  return all;
}

/**
 * Seconds to wait before retrying, or null when the answer is final. 429 and 503 say nothing was done, so
 * they are always retried after Retry-After; an answer that leaves the outcome unknown (no response, a
 * gateway error, 409 while the first request with the key runs) only when the request is safe to repeat.
 * @param {{ status: number, headers: Record<string, string> }} response
 * @param {number} attempt retries already made
 * @param {boolean} repeatable a GET, or an upload with an Idempotency-Key
 * @param {number} [now] epoch milliseconds, for an HTTP-date Retry-After
 * @returns {number | null}
 */
export function retryDelay(response, attempt, repeatable, now = Date.now()) {
  if (attempt >= MAX_RETRIES) return null;
  const backoff = Math.min(RETRY_MAX_WAIT, 0.5 * 2 ** attempt);
  if (response.status === 429 || response.status === 503) {
    const retryAfter = parseRetryAfter(response.headers['Retry-After'], now);
    return Math.min(RETRY_MAX_WAIT, retryAfter === null ? backoff : retryAfter);
  }
  const unknownOutcome =
    response.status === 0 || response.status === 409 || response.status === 502 || response.status === 504;
  return repeatable && unknownOutcome ? backoff : null;
}

/**
 * Retry-After as seconds: either a number of seconds or an HTTP date.
 * @param {string | undefined} value
 * @param {number} now epoch milliseconds
 * @returns {number | null}
 */
function parseRetryAfter(value, now) {
  if (value === undefined || value.trim() === '') return null;
  if (/^\s*\d+\s*$/.test(value)) return Number(value);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, (date - now) / 1000);
}

/**
 * Sends a request, retrying as retryDelay allows; every attempt counts in http_req_* metrics.
 * @param {() => Response} send
 * @param {boolean} repeatable
 * @returns {Response}
 */
function withRetries(send, repeatable) {
  for (let attempt = 0; ; attempt++) {
    const response = send();
    const wait = retryDelay(response, attempt, repeatable);
    if (wait === null) return response;
    retries.add(1, { status: String(response.status) });
    sleep(wait);
  }
}

/**
 * A GET with the common headers, retried on back-pressure and lost answers (reads are safe to repeat).
 * @param {string} script
 * @param {string} url
 * @param {Tags} tags `name` groups URLs that differ only by id or cursor
 * @returns {Response}
 */
export function get(script, url, tags) {
  return withRetries(() => http.get(url, { headers: headers(script), tags }), true);
}

/**
 * Walks a list of files from its first page, following `next` while the answer is 200, for at most
 * `maxPages` pages (an error answer carries no `next`).
 * @param {string} script
 * @param {string} url the first page
 * @param {number} maxPages
 * @param {(page: number) => Tags} tagsFor the tags of page `page` (0 is the first)
 * @param {(response: Response) => void} onPage checks and records each page
 * @returns {number} the pages read
 */
export function walkList(script, url, maxPages, tagsFor, onPage) {
  /** @type {string | null} */
  let next = url;
  let pages = 0;
  while (next !== null && pages < maxPages) {
    const response = get(script, next, tagsFor(pages));
    onPage(response);
    pages += 1;
    const link = jsonField(response, 'next');
    next = response.status === 200 && typeof link === 'string' ? link : null;
  }
  return pages;
}

/**
 * Uploads one file as multipart `file`, retrying on back-pressure, and checks the answer is a new File.
 * @param {string} script
 * @param {Payload} payload
 * @param {Tags} [tags]
 * @returns {{ response: Response, id: string | null }}
 */
export function upload(script, payload, tags = {}) {
  const key = IDEMPOTENCY ? { 'Idempotency-Key': uuid() } : undefined;
  const body = { file: http.file(payload.bytes, payload.name, payload.contentType) };
  const params = () => ({
    headers: headers(script, key),
    tags: Object.assign({ name: 'POST /upload/', kind: payload.kind }, tags),
  });
  const response = withRetries(() => http.post(`${BASE_URL}/upload/`, body, params()), key !== undefined);
  const id = response.status === 201 ? fileId(response) : null;
  const ok = check(response, {
    'upload answered 201': (r) => r.status === 201,
    'upload answered a File with an id': () => id !== null,
  });
  uploadsOk.add(ok, { kind: payload.kind });
  return { response, id };
}

/**
 * @param {Response} response
 * @returns {string | null}
 */
function fileId(response) {
  const id = jsonField(response, 'id');
  return typeof id === 'string' ? id : null;
}

/**
 * A top-level field of a JSON body, or undefined when the body is not a JSON object.
 * @param {Response} response
 * @param {string} field
 * @returns {unknown}
 */
export function jsonField(response, field) {
  try {
    const body = response.json();
    return body !== null && typeof body === 'object' && !Array.isArray(body) ? body[field] : undefined;
  } catch (err) {
    return undefined;
  }
}

/**
 * Latency limits from the environment (`P95_MS`, `P99_MS`), for one scenario's http_req_duration.
 * @param {number} p95 default p95 in ms
 * @param {number} p99 default p99 in ms
 * @returns {Threshold[]}
 */
export function latencyThresholds(p95, p99) {
  return [`p(95)<${envNumber('P95_MS', p95)}`, `p(99)<${envNumber('P99_MS', p99)}`];
}

/**
 * The error thresholds every script shares: failed requests, failed checks, failed uploads. A new object
 * each time, so a script can Object.assign its own thresholds onto it.
 * @returns {{ [metric: string]: Threshold[] }}
 */
export function errorThresholds() {
  return {
    http_req_failed: [`rate<${MAX_ERROR_RATE}`],
    checks: [`rate>${1 - MAX_ERROR_RATE}`],
  };
}

/** The upload success rate threshold, for scripts that upload. */
export function uploadThresholds() {
  return { uploads_ok: [`rate>${1 - MAX_ERROR_RATE}`] };
}

/** Trend statistics in the summary: p(99) is not among k6's defaults. */
export const SUMMARY_TREND_STATS = ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'];

export { summarize } from './summary.js';
