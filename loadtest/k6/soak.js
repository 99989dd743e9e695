// @ts-check
// A long steady mix (uploads of every kind plus list walks, DURATION, default 1h): finds what only time
// shows (leaks, growing indexes, a filling disk, a backlog that never drains) through error rates and
// latency drift, the late latency of each request type against its early latency.
//   k6 run -e BASE_URL=... -e DURATION=1h -e RATE=10 loadtest/k6/soak.js
// Needs k6 v0.48 or later (ES2017 syntax only; see lib.js).
import exec from 'k6/execution';
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import {
  constantArrivalRate,
  BASE_URL,
  durationMs,
  env,
  envNumber,
  errorThresholds,
  latencyThresholds,
  MAX_ERROR_RATE,
  summarize,
  SUMMARY_TREND_STATS,
  upload,
  uploadThresholds,
  walkList,
} from './lib.js';
import { mixFromEnv } from './payloads.js';

const SCRIPT = 'soak';
const DURATION = env('DURATION', '1h');
const RUN_MS = durationMs(DURATION);
/** The first and the last WINDOW share of the run are compared (default: 10% each). */
const WINDOW = envNumber('WINDOW', 0.1);
const nextPayload = mixFromEnv();

/** Late duration over the same VU's early median, per request type: 1 means no drift. */
const latencyDrift = new Trend('latency_drift');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    uploads: constantArrivalRate({ exec: 'uploads', rate: 10, duration: DURATION, maxVUs: 100 }),
    list_walks: {
      executor: 'constant-arrival-rate',
      exec: 'listWalks',
      rate: envNumber('WALKS_PER_SECOND', 1),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: 2,
      maxVUs: 20,
    },
  },
  thresholds: Object.assign(errorThresholds(), uploadThresholds(), {
    // A service that is clearly broken should not be soaked for an hour.
    http_req_failed: [
      { threshold: `rate<${MAX_ERROR_RATE}` },
      { threshold: 'rate<0.2', abortOnFail: true, delayAbortEval: '1m' },
    ],
    'http_req_duration{scenario:uploads,kind:text}': latencyThresholds(100, 250),
    'http_req_duration{scenario:list_walks}': latencyThresholds(100, 250),
    latency_drift: [`med<${envNumber('DRIFT_MAX', 1.5)}`],
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

/** @type {Record<string, number[]>} */
const baselines = {};

/**
 * Keeps early durations as this VU's baseline, and turns late ones into drift ratios against it.
 * @param {string} requestType
 * @param {number} durationMsValue
 */
function trackDrift(requestType, durationMsValue) {
  const elapsed = exec.instance.currentTestRunDuration;
  const baseline = baselines[requestType] || [];
  baselines[requestType] = baseline;
  if (elapsed < RUN_MS * WINDOW) {
    if (baseline.length < 200) baseline.push(durationMsValue);
  } else if (elapsed > RUN_MS * (1 - WINDOW) && baseline.length >= 5) {
    const sorted = [...baseline].sort((a, b) => a - b);
    const middle = sorted[Math.floor(sorted.length / 2)];
    const median = middle === undefined ? durationMsValue : middle;
    latencyDrift.add(durationMsValue / Math.max(median, 0.1), { request: requestType });
  }
}

export function uploads() {
  const payload = nextPayload(`${SCRIPT}-${__VU}-${__ITER}`);
  const { response } = upload(SCRIPT, payload);
  if (response.status === 201) trackDrift(`upload:${payload.kind}`, response.timings.duration);
}

export function listWalks() {
  walkList(
    SCRIPT,
    `${BASE_URL}/files/?limit=100`,
    3,
    () => ({ name: 'GET /files/' }),
    (response) => {
      check(response, { 'list answered 200': (r) => r.status === 200 });
      if (response.status === 200) trackDrift('list', response.timings.duration);
    },
  );
}

/** @param {import('./summary.js').SummaryData} data */
export function handleSummary(data) {
  return summarize(SCRIPT, data);
}
