// @ts-check
// Small uploads (1 KiB text by default) at a ramping arrival rate: the API's hot path (stream to disk,
// one INSERT, one enqueue) at a request rate that does not slow down when the service does.
//   k6 run -e BASE_URL=http://localhost:8080 -e STAGES=30s:100,1m:100,30s:300,1m:300,30s:0 loadtest/k6/upload-small.js
// Needs k6 v0.48 or later (ES2017 syntax only; see lib.js).
import {
  envNumber,
  envStages,
  errorThresholds,
  latencyThresholds,
  summarize,
  SUMMARY_TREND_STATS,
  upload,
  uploadThresholds,
} from './lib.js';
import { textPayload } from './payloads.js';

const SCRIPT = 'upload-small';
const FILE_BYTES = envNumber('FILE_BYTES', 1024);

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    small_uploads: {
      executor: 'ramping-arrival-rate',
      startRate: envNumber('START_RATE', 10),
      timeUnit: '1s',
      stages: envStages('STAGES', '30s:100,1m:100,30s:300,1m:300,30s:0'),
      preAllocatedVUs: envNumber('PRE_VUS', 20),
      maxVUs: envNumber('MAX_VUS', 300),
    },
  },
  thresholds: Object.assign(errorThresholds(), uploadThresholds(), {
    'http_req_duration{scenario:small_uploads}': latencyThresholds(50, 100),
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export default function () {
  upload(SCRIPT, textPayload(FILE_BYTES, `${SCRIPT}-${__VU}-${__ITER}`));
}

/** @param {import('./summary.js').SummaryData} data */
export function handleSummary(data) {
  return summarize(SCRIPT, data);
}
