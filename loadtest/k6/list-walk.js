// @ts-check
// List pagination walks: `GET /files/?limit=100`, then follow `next` up to PAGES pages, with each filter in
// turn. Keyset pagination should make a deep page cost what the first one does.
//   k6 run -e BASE_URL=... -e WALKS_PER_SECOND=5 -e PAGES=20 -e SEED_FILES=2000 loadtest/k6/list-walk.js
// Needs k6 v0.48 or later (ES2017 syntax only; see lib.js).
import { check } from 'k6';
import { Trend } from 'k6/metrics';
import {
  constantArrivalRate,
  BASE_URL,
  env,
  envNumber,
  errorThresholds,
  jsonField,
  latencyThresholds,
  summarize,
  SUMMARY_TREND_STATS,
  upload,
  walkList,
} from './lib.js';
import { textPayload } from './payloads.js';

const SCRIPT = 'list-walk';
const LIMIT = envNumber('LIMIT', 100);
const PAGES = envNumber('PAGES', 10);
/** Query strings tried in turn, `all` meaning no filter. */
const FILTERS = env('FILTERS', 'all,status=processed,kind=text,processed=false').split(',');
const walkDuration = new Trend('list_walk_duration', true);
const walkPages = new Trend('list_walk_pages');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    list_walks: constantArrivalRate({
      rate: 5,
      rateVariable: 'WALKS_PER_SECOND',
      duration: env('DURATION', '1m'),
      preVUs: 10,
      maxVUs: 100,
    }),
  },
  thresholds: Object.assign(errorThresholds(), {
    'http_req_duration{scenario:list_walks}': latencyThresholds(100, 250),
    // A deep page must not cost more than the first: both get the same limits.
    'http_req_duration{scenario:list_walks,page:first}': latencyThresholds(100, 250),
    'http_req_duration{scenario:list_walks,page:next}': latencyThresholds(100, 250),
  }),
  summaryTrendStats: SUMMARY_TREND_STATS,
  setupTimeout: '10m',
};

/** Uploads SEED_FILES small files first when the table would give walks too few pages. */
export function setup() {
  const seed = envNumber('SEED_FILES', 0);
  for (let i = 0; i < seed; i++) upload(SCRIPT, textPayload(512, `${SCRIPT}-seed-${i}`), { phase: 'seed' });
}

export default function () {
  const filter = FILTERS[__ITER % FILTERS.length] || 'all';
  const query = filter === 'all' ? '' : `&${filter}`;
  const started = Date.now();
  const tagsFor = (/** @type {number} */ page) => ({
    name: 'GET /files/',
    filter,
    page: page === 0 ? 'first' : 'next',
  });
  const pages = walkList(SCRIPT, `${BASE_URL}/files/?limit=${LIMIT}${query}`, PAGES, tagsFor, (response) => {
    const results = jsonField(response, 'results');
    const next = jsonField(response, 'next');
    check(response, {
      'list answered 200': (r) => r.status === 200,
      'list page holds at most limit files': () => Array.isArray(results) && results.length <= LIMIT,
      'list next is a URL or null': () => next === null || typeof next === 'string',
    });
  });
  walkDuration.add(Date.now() - started, { filter });
  walkPages.add(pages, { filter });
}

/** @param {import('./summary.js').SummaryData} data */
export function handleSummary(data) {
  return summarize(SCRIPT, data);
}
