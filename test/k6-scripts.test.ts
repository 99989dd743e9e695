// The k6 scripts run under k6 (not here), so this suite proves what can be proved without it: they
// type-check against @types/k6, they load with k6's modules stood in for (a stand-in that refuses what k6
// refuses: later syntax than k6 v0.48 parses, __ITER outside an iteration, open() outside the init context,
// options k6 would not start with), their options carry the thresholds, their payloads are what the service
// will sniff them as, and an iteration does the right requests for the answers it gets.
import { expect } from 'chai';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { crc32, inflateSync } from 'node:zlib';
import { sniffKind } from '../core/kinds.js';
import { entry } from './support/processes.js';
import {
  assertK6Syntax,
  installK6Shim,
  loadK6Script,
  resetK6Shim,
  runHandleSummary,
  runIteration,
  runSetup,
  runTeardown,
  type ShimResponse,
} from './support/k6-shim.js';
import { run } from './support/tools.js';

const K6_DIR = entry('loadtest/k6');
const SCRIPTS = ['upload-small', 'upload-mix', 'list-walk', 'upload-to-processed', 'soak'];
const BASE_URL = 'http://files.test:8080';
const TOKEN = 'a-token-of-at-least-16-characters';
const SANE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

interface Payload {
  bytes: ArrayBuffer | string;
  name: string;
  contentType: string;
  kind: string;
}
interface Scenario {
  executor: string;
  exec?: string;
  stages?: Array<{ duration: string; target: number }>;
}
interface Options {
  scenarios: Record<string, Scenario>;
  thresholds: Record<string, Array<string | { threshold: string }>>;
  summaryTrendStats: string[];
}
type ScriptModule = Record<string, unknown> & {
  options: Options;
  default?: () => void;
  setup?: () => unknown;
  handleSummary: (data: unknown) => Record<string, string>;
};
interface PayloadsModule {
  textPayload(size: number, label: string): Payload;
  pngPayload(approxSize: number, label: string): Payload;
  pdfPayload(approxSize: number, label: string): Payload;
  zipPayload(entrySize: number, label: string): Payload;
  largePayload(size: number, label: string): Payload;
  payloadMix(weights: Array<{ name: string; weight: number }>): (label: string) => Payload;
}
interface LibModule {
  retryDelay(
    response: { status: number; headers: Record<string, string> },
    attempt: number,
    repeatable: boolean,
    now?: number,
  ): number | null;
  headers(script: string, extra?: Record<string, string>): Record<string, string>;
  envStages(name: string, fallback: string): Array<{ duration: string; target: number }>;
  envWeights(name: string, fallback: string): Array<{ name: string; weight: number }>;
  durationMs(duration: string): number;
}
interface SummaryModule {
  textSummary: (script: string, data: unknown) => string;
}

const importK6 = <T>(file: string): Promise<T> => loadK6Script<T>(path.join(K6_DIR, file));
const bytesOf = (payload: Payload) =>
  typeof payload.bytes === 'string' ? Buffer.from(payload.bytes, 'latin1') : Buffer.from(payload.bytes);

/** End-of-test data shaped as k6 hands it to handleSummary. */
const SUMMARY_DATA = {
  state: { testRunDurationMs: 61_500 },
  root_group: {
    name: '',
    checks: [{ name: 'upload answered 201', passes: 990, fails: 10 }],
    groups: [{ name: 'inner', checks: [{ name: 'list answered 200', passes: 5, fails: 0 }], groups: [] }],
  },
  metrics: {
    http_req_failed: {
      type: 'rate',
      contains: 'default',
      values: { rate: 0.01, passes: 10, fails: 990 },
      thresholds: { 'rate<0.01': { ok: false } },
    },
    'http_req_duration{scenario:small_uploads}': {
      type: 'trend',
      contains: 'time',
      values: { avg: 4.2, med: 3.9, 'p(95)': 9.5, 'p(99)': 1250, max: 2000 },
      thresholds: { 'p(95)<50': { ok: true }, 'p(99)<100': { ok: false } },
    },
    retries: { type: 'counter', contains: 'default', values: { count: 7, rate: 0.1138 } },
    vus: { type: 'gauge', contains: 'default', values: { value: 12 } },
  },
};

describe('the k6 scripts', function () {
  this.timeout(60_000);
  let shim: ReturnType<typeof installK6Shim>;
  let lib: LibModule;
  let payloads: PayloadsModule;
  const scripts: Record<string, ScriptModule> = {};

  before(async () => {
    shim = installK6Shim({
      BASE_URL: `${BASE_URL}/`,
      API_TOKEN: TOKEN,
      IDEMPOTENCY: 'true',
      RETRY_MAX_WAIT: '5',
      PAGES: '3',
      LIMIT: '2',
      DURATION: '10m',
    });
    lib = await importK6<LibModule>('lib.js');
    payloads = await importK6<PayloadsModule>('payloads.js');
    for (const script of SCRIPTS) scripts[script] = await importK6<ScriptModule>(`${script}.js`);
  });
  beforeEach(() => resetK6Shim());

  it('is every script in loadtest/k6, and each starts with // @ts-check', () => {
    const files = readdirSync(K6_DIR).filter((file) => file.endsWith('.js'));
    expect(files.sort()).to.deep.equal(
      [...SCRIPTS.map((script) => `${script}.js`), 'lib.js', 'payloads.js', 'summary.js'].sort(),
    );
    for (const file of files) expect(readFileSync(path.join(K6_DIR, file), 'utf8'), file).to.match(/^\/\/ @ts-check\n/);
  });

  describe('type-checking', () => {
    const tsc = entry('node_modules/typescript/bin/tsc');

    it('passes against @types/k6 for every script', async () => {
      const result = await run(process.execPath, [tsc, '-p', path.join(K6_DIR, 'tsconfig.json')]).catch(
        (err: { stdout: string }) => err,
      );
      expect(result.stdout, 'tsc -p loadtest/k6 output').to.equal('');
    });

    it('fails on a script that misuses the k6 API (the check is real, not any)', async () => {
      const dir = entry('dist/k6-typecheck-probe');
      mkdirSync(dir, { recursive: true });
      try {
        writeFileSync(
          path.join(dir, 'tsconfig.json'),
          JSON.stringify({ extends: path.join(K6_DIR, 'tsconfig.json'), include: ['*.js'] }),
        );
        writeFileSync(path.join(dir, 'broken.js'), "// @ts-check\nimport http from 'k6/http';\nhttp.get(42);\n");
        const result = await run(process.execPath, [tsc, '-p', path.join(dir, 'tsconfig.json')]).then(
          () => ({ stdout: '' }),
          (err: { stdout: string }) => err,
        );
        expect(result.stdout).to.include('broken.js(3,10): error TS2345');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('options', () => {
    for (const script of SCRIPTS) {
      it(`${script} has scenarios, error and per-scenario latency thresholds, and a handleSummary`, () => {
        const { options, handleSummary } = scripts[script]!;
        const scenarios = Object.entries(options.scenarios);
        expect(scenarios).to.not.have.lengthOf(0);
        for (const [name, scenario] of scenarios) {
          expect(scripts[script]![scenario.exec ?? 'default'], `${name} runs an exported function`).to.be.a('function');
          const latency = Object.keys(options.thresholds).filter((key) =>
            key.startsWith(`http_req_duration{scenario:${name}`),
          );
          expect(latency, `${name} has latency thresholds`).to.not.have.lengthOf(0);
          for (const key of latency)
            expect(options.thresholds[key]!.map((t) => (typeof t === 'string' ? t : t.threshold)).join(' '))
              .to.match(/p\(95\)<\d+/)
              .and.match(/p\(99\)<\d+/);
        }
        expect(options.thresholds).to.include.keys('http_req_failed', 'checks');
        expect(options.summaryTrendStats).to.include('p(99)');
        expect(handleSummary).to.be.a('function');
        const summary = runHandleSummary(handleSummary, SUMMARY_DATA);
        expect(summary).to.have.keys(`./summary-${script}.json`, 'stdout');
        expect(JSON.parse(summary[`./summary-${script}.json`]!)).to.deep.equal(SUMMARY_DATA);
      });
    }

    it('upload-small ramps its arrival rate through the default stages', () => {
      const scenario = scripts['upload-small']!.options.scenarios.small_uploads!;
      expect(scenario.executor).to.equal('ramping-arrival-rate');
      expect(scenario.stages!.map((stage) => stage.target)).to.deep.equal([100, 100, 300, 300, 0]);
    });

    it('reads stages, weights and durations from the environment, and names the variable when one is wrong', () => {
      globalThis.__ENV.TEST_STAGES = '30s:50, 1m30s:200,10s:0';
      expect(lib.envStages('TEST_STAGES', '')).to.deep.equal([
        { duration: '30s', target: 50 },
        { duration: '1m30s', target: 200 },
        { duration: '10s', target: 0 },
      ]);
      globalThis.__ENV.TEST_STAGES = '50 for 30s';
      expect(() => lib.envStages('TEST_STAGES', '')).to.throw('TEST_STAGES must read like "30s:50,1m:200,30s:0"');
      expect(lib.envWeights('UNSET', 'text:70,image:2.5')).to.deep.equal([
        { name: 'text', weight: 70 },
        { name: 'image', weight: 2.5 },
      ]);
      expect(lib.durationMs('1h30m')).to.equal(5_400_000);
      expect(lib.durationMs('500ms')).to.equal(500);
      expect(() => lib.durationMs('an hour')).to.throw('"an hour" is not a duration');
    });
  });

  describe('requests', () => {
    it('carry the bearer token and a request id the service accepts', () => {
      const headers = lib.headers('upload-small', { 'Idempotency-Key': 'k' });
      expect(headers.Authorization).to.equal(`Bearer ${TOKEN}`);
      expect(headers['X-Request-Id'])
        .to.match(SANE_REQUEST_ID)
        .and.match(/^k6\.upload-small\.[0-9a-f]{12}\.\d+$/);
      expect(headers['Idempotency-Key']).to.equal('k');
      expect(lib.headers('upload-small')['X-Request-Id']).to.not.equal(headers['X-Request-Id']);
    });

    it('list-walk seeds files in setup(), where k6 defines no __ITER, each request with its own id', () => {
      globalThis.__ENV.SEED_FILES = '2';
      shim.responses.push({ status: 201, json: { id: 'f-1' } }, { status: 201, json: { id: 'f-2' } });
      try {
        runSetup(scripts['list-walk']!.setup!);
      } finally {
        delete globalThis.__ENV.SEED_FILES;
      }

      expect(shim.requests.map((r) => r.params?.tags)).to.deep.equal([
        { name: 'POST /upload/', kind: 'text', phase: 'seed' },
        { name: 'POST /upload/', kind: 'text', phase: 'seed' },
      ]);
      const ids = shim.requests.map((r) => r.params?.headers?.['X-Request-Id']);
      for (const id of ids) expect(id).to.match(SANE_REQUEST_ID);
      expect(new Set(ids).size).to.equal(2);
    });

    it('retry 429 and 503 after Retry-After (capped by RETRY_MAX_WAIT), reusing the Idempotency-Key', () => {
      shim.responses.push(
        { status: 429, headers: { 'Retry-After': '2' } },
        { status: 503, headers: { 'Retry-After': '60' } },
        { status: 201, json: { id: 'f-1', status: 'queued' } },
      );
      runIteration(scripts['upload-small']!.default!);

      expect(shim.sleeps).to.deep.equal([2, 5]);
      expect(shim.requests.map((r) => `${r.method} ${r.url}`)).to.deep.equal(Array(3).fill(`POST ${BASE_URL}/upload/`));
      const keys = shim.requests.map((r) => r.params?.headers?.['Idempotency-Key']);
      expect(keys[0]).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(new Set(keys).size, 'one key for every attempt').to.equal(1);
      expect(
        new Set(shim.requests.map((r) => r.params?.headers?.['X-Request-Id'])).size,
        'a request id per attempt',
      ).to.equal(3);
      expect(shim.requests[0]!.params?.tags).to.deep.equal({ name: 'POST /upload/', kind: 'text' });
      const file = (shim.requests[0]!.body as { file: { data: string; filename: string } }).file;
      expect(file.data).to.have.length(1024);
      expect(shim.metrics.retries!.map((sample) => sample.tags?.status)).to.deep.equal(['429', '503']);
      expect(shim.metrics.uploads_ok!.map((sample) => sample.value)).to.deep.equal([true]);
    });

    it('retry an unknown outcome only when the request is safe to repeat, and never past MAX_RETRIES', () => {
      const lost = { status: 0, headers: {} };
      expect(lib.retryDelay(lost, 0, false)).to.equal(null);
      expect(lib.retryDelay(lost, 0, true)).to.equal(0.5);
      expect(lib.retryDelay({ status: 502, headers: {} }, 2, true)).to.equal(2);
      expect(lib.retryDelay({ status: 429, headers: { 'Retry-After': '1' } }, 3, true)).to.equal(null);
      expect(lib.retryDelay({ status: 400, headers: {} }, 0, true)).to.equal(null);
      const now = Date.parse('2026-11-27T10:00:00Z');
      expect(
        lib.retryDelay({ status: 503, headers: { 'Retry-After': 'Fri, 27 Nov 2026 10:00:03 GMT' } }, 0, false, now),
      ).to.equal(3);
      expect(lib.retryDelay({ status: 503, headers: {} }, 1, false)).to.equal(1);
    });

    it('count an upload that ends in an error as a failed check and a failed upload', () => {
      shim.responses.push({ status: 413, json: { code: 'file_too_large' } });
      runIteration(scripts['upload-small']!.default!);

      expect(shim.checks).to.deep.include({ name: 'upload answered 201', passed: false });
      expect(shim.metrics.uploads_ok!.map((sample) => sample.value)).to.deep.equal([false]);
      expect(shim.sleeps).to.deep.equal([]);
    });

    it('list-walk follows next up to PAGES pages with the filter, tagging first and deeper pages apart', () => {
      const page = (n: number) => ({
        status: 200,
        json: { results: [{ id: `a${n}` }, { id: `b${n}` }], next: `${BASE_URL}/files/?limit=2&cursor=c${n}` },
      });
      shim.responses.push(page(1), page(2), page(3), page(4));
      runIteration(scripts['list-walk']!.default!);

      expect(shim.requests.map((r) => r.url)).to.deep.equal([
        `${BASE_URL}/files/?limit=2`,
        `${BASE_URL}/files/?limit=2&cursor=c1`,
        `${BASE_URL}/files/?limit=2&cursor=c2`,
      ]);
      expect(shim.requests.map((r) => r.params?.tags?.page)).to.deep.equal(['first', 'next', 'next']);
      expect(shim.checks.every((c) => c.passed)).to.equal(true);
      expect(shim.metrics.list_walk_pages!.map((sample) => sample.value)).to.deep.equal([3]);
    });

    it('list-walk stops at the last page', () => {
      shim.responses.push({ status: 200, json: { results: [], next: null } });
      runIteration(scripts['list-walk']!.default!, { iteration: 1 });

      expect(shim.requests.map((r) => r.url)).to.deep.equal([`${BASE_URL}/files/?limit=2&status=processed`]);
    });

    it('upload-to-processed polls the file until it is processed and records both latencies', () => {
      shim.responses.push(
        { status: 201, json: { id: 'f-2', status: 'queued' } },
        { status: 200, json: { id: 'f-2', status: 'processing' } },
        {
          status: 200,
          json: {
            id: 'f-2',
            status: 'processed',
            uploaded_at: '2026-11-27T10:00:00.000Z',
            processed_at: '2026-11-27T10:00:00.250Z',
          },
        },
      );
      runIteration(scripts['upload-to-processed']!.default!);

      expect(shim.requests.map((r) => `${r.method} ${r.url}`)).to.deep.equal([
        `POST ${BASE_URL}/upload/`,
        `GET ${BASE_URL}/files/f-2/`,
        `GET ${BASE_URL}/files/f-2/`,
      ]);
      expect(shim.requests[1]!.params?.tags).to.deep.equal({ name: 'GET /files/:id/' });
      expect(shim.sleeps).to.deep.equal([0.1]);
      expect(shim.metrics.upload_to_processed).to.have.length(1);
      expect(shim.metrics.upload_to_processed![0]!.tags).to.deep.equal({ kind: 'text', outcome: 'processed' });
      expect(shim.metrics.server_upload_to_processed!.map((sample) => sample.value)).to.deep.equal([250]);
      expect(shim.metrics.processing_failed!.map((sample) => sample.value)).to.deep.equal([false]);
    });

    it('upload-to-processed counts a failed file as a processing failure', () => {
      shim.responses.push(
        { status: 201, json: { id: 'f-3' } },
        { status: 200, json: { id: 'f-3', status: 'failed', error: { code: 'checksum_mismatch' } } },
      );
      runIteration(scripts['upload-to-processed']!.default!);

      expect(shim.metrics.processing_failed!.map((sample) => sample.value)).to.deep.equal([true]);
      expect(shim.metrics.server_upload_to_processed).to.deep.equal([]);
    });

    it('soak compares late latencies with the same request type early in the run', () => {
      const soak = scripts.soak!;
      const listPage = (durationMs: number): ShimResponse => ({
        status: 200,
        json: { results: [], next: null },
        durationMs,
      });
      for (const ms of [10, 12, 8, 10, 11]) {
        shim.responses.push(listPage(ms));
        runIteration(soak.listWalks as () => void);
      }
      shim.elapsedMs = 9.5 * 60_000;
      shim.responses.push(listPage(30));
      runIteration(soak.listWalks as () => void);

      expect(shim.metrics.latency_drift!.map((sample) => [sample.value, sample.tags?.request])).to.deep.equal([
        [3, 'list'],
      ]);
    });
  });

  describe('payloads', () => {
    it('are sniffed by the service as the kind they claim', async () => {
      const made = [
        payloads.textPayload(1024, 'small'),
        payloads.textPayload(64 * 1024, 'big-text'),
        payloads.pngPayload(50 * 1024, 'image'),
        payloads.pdfPayload(64 * 1024, 'doc'),
        payloads.zipPayload(64 * 1024, 'bundle'),
        payloads.largePayload(1024 * 1024, 'movie'),
      ];
      for (const payload of made) {
        const sniffed = await sniffKind(bytesOf(payload).subarray(0, 4100), payload.name);
        expect(sniffed.kind, payload.name).to.equal(payload.kind);
      }
      expect(made.map((payload) => bytesOf(payload).length)).to.include.members([1024, 64 * 1024, 1024 * 1024]);
    });

    it('build a PNG with valid chunk CRCs whose pixels inflate to its declared size', () => {
      const png = bytesOf(payloads.pngPayload(200 * 1024, 'image'));
      expect(png.length).to.be.within(195 * 1024, 205 * 1024);
      let offset = 8;
      const chunks: Record<string, Buffer> = {};
      while (offset < png.length) {
        const length = png.readUInt32BE(offset);
        const type = png.toString('latin1', offset + 4, offset + 8);
        const data = png.subarray(offset + 8, offset + 8 + length);
        expect(png.readUInt32BE(offset + 8 + length), `${type} CRC`).to.equal(
          crc32(png.subarray(offset + 4, offset + 8 + length)),
        );
        chunks[type] = data;
        offset += 12 + length;
      }
      expect(Object.keys(chunks)).to.deep.equal(['IHDR', 'IDAT', 'IEND']);
      const width = chunks.IHDR!.readUInt32BE(0);
      const height = chunks.IHDR!.readUInt32BE(4);
      expect(inflateSync(chunks.IDAT!).length).to.equal(height * (1 + width * 3));
    });

    it('build a PDF whose cross-reference table points at each object', () => {
      const pdf = payloads.pdfPayload(32 * 1024, 'doc').bytes as string;
      const xrefAt = Number(/startxref\n(\d+)\n%%EOF\n$/.exec(pdf)![1]);
      expect(pdf.slice(xrefAt, xrefAt + 4)).to.equal('xref');
      const offsets = [...pdf.slice(xrefAt).matchAll(/^(\d{10}) 00000 n $/gm)].map((m) => Number(m[1]));
      expect(offsets).to.have.length(5);
      offsets.forEach((offset, i) => expect(pdf.slice(offset, offset + 8)).to.equal(`${i + 1} 0 obj\n`));
    });

    it('build a zip whose entry CRC matches its data and whose end record finds the central directory', () => {
      const zip = bytesOf(payloads.zipPayload(10_000, 'bundle'));
      const end = zip.length - 22;
      expect(zip.readUInt32LE(end)).to.equal(0x06054b50);
      const central = zip.readUInt32LE(end + 16);
      expect(zip.readUInt32LE(central)).to.equal(0x02014b50);
      const nameLength = zip.readUInt16LE(26);
      const data = zip.subarray(30 + nameLength, 30 + nameLength + zip.readUInt32LE(18));
      expect(data.length).to.equal(10_000);
      expect(zip.readUInt32LE(14)).to.equal(crc32(data));
      expect(zip.readUInt32LE(central + 16)).to.equal(crc32(data));
    });

    it('are drawn in proportion to MIX, and an unknown MIX name is refused', () => {
      const next = payloads.payloadMix([
        { name: 'text', weight: 70 },
        { name: 'image', weight: 20 },
        { name: 'document', weight: 10 },
        { name: 'large', weight: 0 },
      ]);
      const counts: Record<string, number> = {};
      for (let i = 0; i < 2000; i++) {
        const kind = next(`p${i}`).kind;
        counts[kind] = (counts[kind] ?? 0) + 1;
      }
      expect(counts.text).to.be.within(1250, 1550);
      expect(counts.image).to.be.within(300, 500);
      expect((counts.pdf ?? 0) + (counts.archive ?? 0)).to.be.within(120, 280);
      expect(counts.video).to.equal(undefined);
      const large = payloads.payloadMix([{ name: 'large', weight: 1 }])('big');
      expect(bytesOf(large).length).to.be.within(10 * 1024 * 1024, 50 * 1024 * 1024);
      expect(() => payloads.payloadMix([{ name: 'audio', weight: 1 }])).to.throw('"audio" is none of them');
    });
  });

  describe('the text summary', () => {
    it('leads with the verdict, then each metric with its thresholds, then the checks', async () => {
      const { textSummary } = await importK6<SummaryModule>('summary.js');
      const text = textSummary('upload-small', SUMMARY_DATA);

      expect(text).to.include(
        'upload-small: 61.5 s, 2 threshold(s) FAILED: http_req_duration{scenario:small_uploads} p(99)<100; http_req_failed rate<0.01',
      );
      expect(text).to.match(
        /http_req_duration\{scenario:small_uploads\} +avg=4\.2ms med=3\.9ms p\(95\)=9\.5ms p\(99\)=1\.25s max=2\.00s {3}\[ok p\(95\)<50, FAILED p\(99\)<100\]/,
      );
      expect(text).to.match(/http_req_failed +1\.00% \(10 of 1000\) {3}\[FAILED rate<0\.01\]/);
      expect(text).to.match(/retries +7 \(0\.11\/s\)/);
      expect(text).to.match(/vus +12/);
      expect(text)
        .to.include('FAILED upload answered 201: 990 passed, 10 failed')
        .and.include('ok     list answered 200: 5 passed, 0 failed');
    });
  });

  describe('the stand-in refuses what k6 refuses', () => {
    let dir: string;
    let count = 0;
    before(() => {
      dir = mkdtempSync(path.join(os.tmpdir(), 'k6-probe-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    /** A script file of its own (modules are cached by URL, so every probe is new). */
    const probe = (source: string, name = `probe-${++count}.js`) => {
      const file = path.join(dir, name);
      writeFileSync(file, source);
      return file;
    };
    const refusal = (promise: Promise<unknown>): Promise<Error> =>
      promise.then(
        () => {
          throw new Error('the stand-in accepted what k6 refuses');
        },
        (err: Error) => err,
      );
    const load = (source: string) => loadK6Script<ScriptModule>(probe(source));

    it('loads every script in loadtest/k6, each parsing as ES2017', async () => {
      for (const file of readdirSync(K6_DIR).filter((name) => name.endsWith('.js'))) {
        assertK6Syntax(file, readFileSync(path.join(K6_DIR, file), 'utf8'));
        await importK6(file);
      }
    });

    const later: Record<string, string> = {
      'object spread': 'const base = { a: 1 };\nexport const options = { ...base };',
      'object rest': 'const { a, ...rest } = { a: 1, b: 2 };\nexport { rest };',
      'optional chaining': 'export const x = globalThis.nothing?.deeper;',
      'nullish coalescing': 'export const x = globalThis.nothing ?? 1;',
      'catch without a binding': 'try { JSON.parse("{"); } catch { /* no binding */ }',
      'a class field': 'export class Point { x = 0; }',
    };
    for (const [feature, code] of Object.entries(later)) {
      it(`refuses ${feature}, which k6 v0.48 cannot parse`, async () => {
        const file = probe(`${code}\nexport default function () {}\n`);
        const err = await refusal(loadK6Script(file));
        expect(err.message).to.include(file).and.include('k6 v0.48 parses ES modules as ES2017');
      });
    }

    it('refuses later syntax in a module a script imports, and accepts what ES2017 has', async () => {
      const helper = probe('export const pick = (x) => x ?? 0;\n');
      const err = await refusal(load(`import { pick } from './${path.basename(helper)}';\nexport default pick;\n`));
      expect(err.message).to.include(helper);

      const es2017 = await load(
        [
          'export const power = 2 ** 10;',
          'export const merged = Object.assign({}, { a: 1 }, { b: 2 });',
          'export const list = [...[1, 2], 3];',
          'export async function later() { await null; }',
          'export default function (data,) { return Math.max(1, 2,); }',
        ].join('\n'),
      );
      expect(es2017.power).to.equal(1024);
    });

    it('refuses imports k6 cannot load: Node built-ins and packages', async () => {
      const err = await refusal(load("import fs from 'node:fs';\nexport default function () { fs.statSync('.'); }\n"));
      expect(err.message).to.include('k6 cannot import "node:fs"');
      expect((await refusal(load("import { expect } from 'chai';\nexport default expect;\n"))).message).to.include(
        'k6 cannot import "chai"',
      );
    });

    it('defines __ITER only inside an iteration and __VU as the VU there, 0 elsewhere', async () => {
      const script = await load(
        [
          'export const initVU = __VU;',
          'export const seen = [];',
          'export function setup() { seen.push(__VU); return __ITER; }',
          'export default function () { seen.push([__VU, __ITER]); }',
          'export function teardown() { seen.push(__VU); return __ITER; }',
          'export function handleSummary() { return { stdout: String(__ITER) }; }',
          'export function readIter() { return __ITER; }',
        ].join('\n'),
      );
      expect(script.initVU).to.equal(0);
      runIteration(script.default!, { vu: 3, iteration: 7 });
      expect(() => runSetup(script.setup!)).to.throw(ReferenceError, '__ITER is not defined');
      expect(() => runTeardown(script.teardown as () => unknown)).to.throw(ReferenceError, '__ITER is not defined');
      expect(() => runHandleSummary(script.handleSummary, {})).to.throw(ReferenceError, '__ITER is not defined');
      expect(script.seen).to.deep.equal([[3, 7], 0, 0]);
      expect(() => (script.readIter as () => number)(), 'after the iteration').to.throw(ReferenceError);

      const err = await refusal(load('export const iteration = __ITER;\nexport default function () {}\n'));
      expect(err).to.be.instanceOf(ReferenceError);
      expect(err.message).to.equal('__ITER is not defined');
    });

    it('lets open() read files in the init context only', async () => {
      writeFileSync(path.join(dir, 'data.txt'), 'seed data');
      const script = await load(
        [
          "export const text = open('./data.txt');",
          "export const bytes = open('./data.txt', 'b');",
          "export function setup() { return open('./data.txt'); }",
          "export default function () { open('./data.txt'); }",
        ].join('\n'),
      );
      expect(script.text).to.equal('seed data');
      expect(script.bytes).to.be.instanceOf(ArrayBuffer);
      for (const run of [() => runIteration(script.default!), () => runSetup(script.setup!)])
        expect(run).to.throw('the "open" function is only available in the init stage');
    });

    it('declares metrics only in the init context, and checks, requests and samples only outside it', async () => {
      const script = await load(
        [
          "import { Counter } from 'k6/metrics';",
          "const made = new Counter('made_in_init');",
          "export function addLate() { new Counter('made_late'); }",
          'export default function () { made.add(1); }',
        ].join('\n'),
      );
      runIteration(script.default!);
      expect(shim.metrics.made_in_init!.map((sample) => sample.value)).to.deep.equal([1]);
      expect(() => runIteration(script.addLate as () => void)).to.throw('metrics must be declared in the init context');

      const inInit = {
        "import { check } from 'k6';\ncheck(1, { one: (x) => x === 1 });": 'Using check() in the init context',
        "import http from 'k6/http';\nhttp.get('http://files.test/');": 'Making http requests in the init context',
        "import { Rate } from 'k6/metrics';\nnew Rate('early').add(true);": 'Adding to metrics in the init context',
        "import exec from 'k6/execution';\nexport const t = exec.instance.currentTestRunDuration;":
          'getting instance information in the init context',
      };
      for (const [code, message] of Object.entries(inInit))
        expect((await refusal(load(`${code}\nexport default function () {}\n`))).message).to.include(message);
    });

    /** A script with one default scenario and the given options merged in. */
    const withOptions = (options: string, declare = '') =>
      load(
        [
          "import { Trend } from 'k6/metrics';",
          declare,
          'export const options = Object.assign({',
          "  scenarios: { main: { executor: 'constant-arrival-rate', rate: 1, duration: '10s', preAllocatedVUs: 1 } },",
          `}, ${options});`,
          'export default function () {}',
        ].join('\n'),
      );

    it('starts a script whose options k6 accepts', async () => {
      await withOptions(
        `{
          thresholds: {
            http_req_failed: ['rate<0.01', { threshold: 'rate<0.2', abortOnFail: true, delayAbortEval: '1m' }],
            'http_req_duration{scenario:main,kind:text}': ['p(99.9)<250', 'avg <= 100', 'max!=0'],
            own: ['med<1.5', 'min>=0'],
            iterations: ['count>0', 'rate>1e-3'],
          },
          summaryTrendStats: ['avg', 'p(99)', 'count'],
          setupTimeout: '10m',
        }`,
        "new Trend('own');",
      );
    });

    const refused: Record<string, [options: string, message: string]> = {
      'a threshold on a metric nothing declares': [
        "{ thresholds: { nope: ['rate<0.1'] } }",
        'no metric name "nope" found',
      ],
      "a threshold on a metric only another script declares (soak.js's latency_drift)": [
        "{ thresholds: { latency_drift: ['med<2'] } }",
        'no metric name "latency_drift" found',
      ],
      'an aggregation the metric type lacks': [
        "{ thresholds: { http_req_failed: ['p(95)<10'] } }",
        'unsupported aggregation method p on metric of type rate',
      ],
      'a malformed threshold expression': [
        "{ thresholds: { checks: ['rate~0.9'] } }",
        'malformed threshold expression',
      ],
      'a threshold that is not in an array': ["{ thresholds: { checks: 'rate>0.9' } }", 'must be an array'],
      'a malformed tag selector': [
        "{ thresholds: { 'http_req_duration{scenario}': ['p(95)<1'] } }",
        'tag expression is malformed',
      ],
      'an unknown scenario field': [
        "{ scenarios: { main: { executor: 'constant-vus', vu: 2, duration: '10s' } } }",
        'vu json: unknown field',
      ],
      'a fractional rate': [
        "{ scenarios: { main: { executor: 'constant-arrival-rate', rate: 2.5, duration: '10s', preAllocatedVUs: 1 } } }",
        'rate must be an integer',
      ],
      'a missing duration': [
        "{ scenarios: { main: { executor: 'constant-arrival-rate', rate: 2, preAllocatedVUs: 1 } } }",
        'duration is required by constant-arrival-rate',
      ],
      'a stage without a target': [
        "{ scenarios: { main: { executor: 'ramping-arrival-rate', preAllocatedVUs: 1, stages: [{ duration: '1m' }] } } }",
        "stage 1 doesn't have a target",
      ],
      'an exec that names no exported function': [
        "{ scenarios: { main: { executor: 'constant-vus', duration: '10s', exec: 'walk' } } }",
        "function 'walk' not found in exports",
      ],
      'an unknown executor': ["{ scenarios: { main: { executor: 'constant-rps' } } }", 'unknown executor type'],
      'a percentile summary stat above 100': [
        "{ summaryTrendStats: ['p(101)'] }",
        "invalid percentile trend stat value 'p(101)'",
      ],
      'a duration without a unit': ["{ setupTimeout: '10' }", 'options.setupTimeout must be a duration'],
    };
    for (const [what, [options, message]] of Object.entries(refused)) {
      it(`refuses options with ${what}`, async () => {
        const err = await refusal(withOptions(options));
        expect(err.message).to.include('k6 would not start').and.include(message);
      });
    }

    it('refuses a handleSummary answer k6 cannot write', async () => {
      const script = await load(
        'export function handleSummary() { return { stdout: 42 }; }\nexport default function () {}\n',
      );
      expect(() => runHandleSummary(script.handleSummary, SUMMARY_DATA)).to.throw(
        'error handling summary object stdout',
      );
    });
  });
});
