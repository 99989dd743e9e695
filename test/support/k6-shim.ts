// Node stand-ins for k6's built-in modules, so the k6 scripts load under mocha: their options, payload
// builders and summary run for real, and their iterations run against responses a test queues up.
// This file is both the installer (main thread) and the module loader hooks (loader thread).
import { register } from 'node:module';

export interface ShimResponse {
  status: number;
  headers?: Record<string, string>;
  json?: unknown;
  /** What k6 would report as `timings.duration`, in ms. */
  durationMs?: number;
}

export interface ShimRequest {
  method: string;
  url: string;
  body: unknown;
  params: { headers?: Record<string, string>; tags?: Record<string, string> } | undefined;
}

export interface K6Shim {
  requests: ShimRequest[];
  responses: ShimResponse[];
  sleeps: number[];
  checks: Array<{ name: string; passed: boolean }>;
  metrics: Record<string, Array<{ value: number | boolean; tags: Record<string, string> | undefined }>>;
  /** What `exec.instance.currentTestRunDuration` answers. */
  elapsedMs: number;
}

declare global {
  var k6Shim: K6Shim;
  var __ENV: Record<string, string>;
  var __VU: number;
  var __ITER: number;
}

const SOURCES: Record<string, string> = {
  k6: `
    export function check(value, checks) {
      let ok = true;
      for (const [name, test] of Object.entries(checks)) {
        const passed = Boolean(test(value));
        globalThis.k6Shim.checks.push({ name, passed });
        ok = ok && passed;
      }
      return ok;
    }
    export function sleep(seconds) { globalThis.k6Shim.sleeps.push(seconds); }`,
  'k6/http': `
    export function file(data, filename, contentType) { return { data, filename, content_type: contentType }; }
    function request(method, url, body, params) {
      globalThis.k6Shim.requests.push({ method, url, body, params });
      const next = globalThis.k6Shim.responses.shift();
      if (!next) throw new Error('No response queued for ' + method + ' ' + url);
      const text = next.json === undefined ? '' : JSON.stringify(next.json);
      return { status: next.status, headers: next.headers ?? {}, body: text, json: () => JSON.parse(text), timings: { duration: next.durationMs ?? 1 } };
    }
    export function get(url, params) { return request('GET', url, null, params); }
    export function post(url, body, params) { return request('POST', url, body, params); }
    export default { file, get, post };`,
  'k6/metrics': `
    class Metric {
      constructor(name) { this.name = name; globalThis.k6Shim.metrics[name] ??= []; }
      add(value, tags) { globalThis.k6Shim.metrics[this.name].push({ value, tags }); }
    }
    export class Counter extends Metric {}
    export class Rate extends Metric {}
    export class Trend extends Metric {}`,
  'k6/crypto': `
    import { randomBytes as nodeRandomBytes } from 'node:crypto';
    export function randomBytes(size) { return new Uint8Array(nodeRandomBytes(size)).buffer; }`,
  'k6/execution': `
    export default { instance: { get currentTestRunDuration() { return globalThis.k6Shim.elapsedMs; } } };`,
};

const PREFIX = 'k6-shim:';

/** Loader hook: `k6` and `k6/...` resolve to the stand-ins above; everything else as usual. */
export async function resolve(
  specifier: string,
  context: unknown,
  next: (specifier: string, context: unknown) => Promise<{ url: string }>,
): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier in SOURCES) return { url: `${PREFIX}${specifier}`, shortCircuit: true };
  return next(specifier, context);
}

/** Loader hook: the stand-ins' source. */
export async function load(
  url: string,
  context: unknown,
  next: (url: string, context: unknown) => Promise<unknown>,
): Promise<unknown> {
  if (url.startsWith(PREFIX))
    return { format: 'module', source: SOURCES[url.slice(PREFIX.length)], shortCircuit: true };
  return next(url, context);
}

/** Installs the stand-ins and k6's globals; the scripts read `env` when they are first imported. */
export function installK6Shim(env: Record<string, string>): K6Shim {
  register(import.meta.url);
  globalThis.__ENV = env;
  globalThis.__VU = 1;
  globalThis.__ITER = 0;
  globalThis.k6Shim = { requests: [], responses: [], sleeps: [], checks: [], metrics: {}, elapsedMs: 0 };
  return globalThis.k6Shim;
}

/** Forgets what earlier iterations did, keeping the metrics the scripts declared. */
export function resetK6Shim(): void {
  const shim = globalThis.k6Shim;
  shim.requests.length = 0;
  shim.responses.length = 0;
  shim.sleeps.length = 0;
  shim.checks.length = 0;
  for (const samples of Object.values(shim.metrics)) samples.length = 0;
  shim.elapsedMs = 0;
}
