// @ts-check
// Upload-to-processed latency: upload, then poll `GET /files/{id}/` until the file is `processed` (or
// `failed`). Measures the whole pipeline a client waits for: API, queue wait, worker, database.
//   k6 run -e BASE_URL=... -e RATE=20 -e KIND=text loadtest/k6/upload-to-processed.js
// Needs k6 v0.48 or later (ES2017 syntax only; see lib.js).
import { check, sleep } from 'k6';
import { Counter, Rate, Trend } from 'k6/metrics';
import {
  constantArrivalRate,
  BASE_URL,
  env,
  envNumber,
  errorThresholds,
  get,
  jsonField,
  latencyThresholds,
  MAX_ERROR_RATE,
  summarize,
  SUMMARY_TREND_STATS,
  upload,
  uploadThresholds,
} from './lib.js';
import { KIB, mixFromEnv, pngPayload, textPayload } from './payloads.js';

const SCRIPT = 'upload-to-processed';
/** `text` (1 KiB), `image` (a 50 KiB PNG) or `mix` (the MIX of upload-mix.js). */
const KIND = env('KIND', 'text');
const POLL_INTERVAL = envNumber('POLL_INTERVAL', 0.1);
const PROCESS_TIMEOUT = envNumber('PROCESS_TIMEOUT', 60);

/** Seen by the client: from sending the upload to the poll that shows the outcome (overstates by up to one poll). */
const uploadToProcessed = new Trend('upload_to_processed', true);
/** Recorded by the service: `processed_at - uploaded_at`, free of polling and network time. */
const serverUploadToProcessed = new Trend('server_upload_to_processed', true);
/** Files that ended `failed`, or not within PROCESS_TIMEOUT. */
const processingFailed = new Rate('processing_failed');
const processingTimeouts = new Counter('processing_timeouts');

/** @returns {(label: string) => import('./lib.js').Payload} */
function payloadsFor(/** @type {string} */ kind) {
  if (kind === 'text') return (label) => textPayload(KIB, label);
  if (kind === 'image') {
    const image = pngPayload(50 * KIB, 'pool');
    return (label) => Object.assign({}, image, { name: `${label}.png` });
  }
  if (kind === 'mix') return mixFromEnv();
  throw new Error(`KIND must be text, image or mix, not "${kind}".`);
}
const nextPayload = payloadsFor(KIND);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    upload_to_processed: constantArrivalRate({ rate: 10, duration: env('DURATION', '1m'), maxVUs: 200 }),
  },
  thresholds: Object.assign(errorThresholds(), uploadThresholds(), {
    'http_req_duration{scenario:upload_to_processed,name:POST /upload/}': latencyThresholds(100, 250),
    'http_req_duration{scenario:upload_to_processed,name:GET /files/:id/}': ['p(95)<50', 'p(99)<100'],
    upload_to_processed: [
      `p(95)<${envNumber('PROCESSED_P95_MS', 2000)}`,
      `p(99)<${envNumber('PROCESSED_P99_MS', 5000)}`,
    ],
    processing_failed: [`rate<${MAX_ERROR_RATE}`],
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export default function () {
  const payload = nextPayload(`${SCRIPT}-${__VU}-${__ITER}`);
  const started = Date.now();
  const { id } = upload(SCRIPT, payload);
  if (id === null) return;
  const tags = { kind: payload.kind };
  const deadline = started + PROCESS_TIMEOUT * 1000;
  for (;;) {
    const response = get(SCRIPT, `${BASE_URL}/files/${id}/`, { name: 'GET /files/:id/' });
    const status = jsonField(response, 'status');
    check(response, { 'file answered 200': (r) => r.status === 200 });
    if (status === 'processed' || status === 'failed') {
      uploadToProcessed.add(Date.now() - started, Object.assign({}, tags, { outcome: status }));
      const serverMs =
        Date.parse(String(jsonField(response, 'processed_at'))) -
        Date.parse(String(jsonField(response, 'uploaded_at')));
      if (status === 'processed' && Number.isFinite(serverMs)) serverUploadToProcessed.add(serverMs, tags);
      processingFailed.add(status === 'failed', tags);
      return;
    }
    if (Date.now() > deadline) {
      processingTimeouts.add(1, tags);
      processingFailed.add(true, tags);
      return;
    }
    sleep(POLL_INTERVAL);
  }
}

/** @param {import('./summary.js').SummaryData} data */
export function handleSummary(data) {
  return summarize(SCRIPT, data);
}
