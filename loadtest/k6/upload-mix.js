// @ts-check
// A realistic mix of sizes and kinds at a constant arrival rate: what upload bandwidth, disk and the
// workers' read-back cost when files are not all tiny.
//   k6 run -e BASE_URL=... -e RATE=20 -e DURATION=5m -e MIX=text:70,image:20,document:8,large:2 loadtest/k6/upload-mix.js
// Needs k6 v0.48 or later (ES2017 syntax only; see lib.js).
import {
  constantArrivalRate,
  env,
  errorThresholds,
  latencyThresholds,
  summarize,
  SUMMARY_TREND_STATS,
  upload,
  uploadThresholds,
} from './lib.js';
import { mixFromEnv } from './payloads.js';

const SCRIPT = 'upload-mix';
const nextPayload = mixFromEnv();

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    mixed_uploads: constantArrivalRate({ rate: 20, duration: env('DURATION', '2m'), maxVUs: 100 }),
  },
  thresholds: Object.assign(errorThresholds(), uploadThresholds(), {
    // Durations grow with size, so each kind has its own limits (P95_MS/P99_MS move the small ones).
    'http_req_duration{scenario:mixed_uploads,kind:text}': latencyThresholds(100, 250),
    'http_req_duration{scenario:mixed_uploads,kind:image}': ['p(95)<500', 'p(99)<1000'],
    'http_req_duration{scenario:mixed_uploads,kind:pdf}': ['p(95)<1000', 'p(99)<2000'],
    'http_req_duration{scenario:mixed_uploads,kind:archive}': ['p(95)<1000', 'p(99)<2000'],
    'http_req_duration{scenario:mixed_uploads,kind:video}': ['p(95)<15000', 'p(99)<30000'],
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
};

export default function () {
  upload(SCRIPT, nextPayload(`${SCRIPT}-${__VU}-${__ITER}`));
}

/** @param {import('./summary.js').SummaryData} data */
export function handleSummary(data) {
  return summarize(SCRIPT, data);
}
