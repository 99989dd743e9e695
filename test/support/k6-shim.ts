// Node stand-ins for k6's built-in modules, so the k6 scripts load under mocha: their options, payload
// builders and summary run for real, and their iterations run against responses a test queues up.
//
// The stand-in refuses what k6 refuses, so that a script that would die under k6 fails a test here:
// - syntax: k6 before v0.53 put every ES module through its built-in Babel 6, whose parser stops at ES2017
//   (no object spread, `?.`, `??`, `catch {}`...), so every module a script loads is parsed as ES2017 first.
//   A module may import only relative files and k6's own modules, as in k6.
// - the test life cycle: code runs in one stage at a time, as loadK6Script (the init context), runSetup,
//   runIteration, runTeardown and runHandleSummary have it. `__ITER` is defined only in an iteration (reading
//   it elsewhere is k6's ReferenceError) and `__VU` is the VU there and 0 elsewhere, as k6 sets them
//   (js/bundle.go, js/runner.go). open() and declaring metrics work only in the init context; check(),
//   requests, adding to metrics and exec.instance only outside it, with k6's messages.
// - options: loadK6Script checks them as k6 does before starting (./k6-options.ts).
// This file is both the installer (main thread) and the module loader hooks (loader thread).
import { readFileSync } from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parse } from 'acorn';
import { BUILTIN_METRICS, optionsErrors, type MetricType } from './k6-options.js';

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

export type Stage = 'init' | 'setup' | 'iteration' | 'teardown' | 'handleSummary' | 'none';

export interface K6Shim {
  requests: ShimRequest[];
  responses: ShimResponse[];
  sleeps: number[];
  checks: Array<{ name: string; passed: boolean }>;
  metrics: Record<string, Array<{ value: number | boolean; tags: Record<string, string> | undefined }>>;
  /** What `exec.instance.currentTestRunDuration` answers. */
  elapsedMs: number;
  /** Where k6 would be in the test life cycle; `none` between stages, where no k6 code runs. */
  stage: Stage;
  /** The metrics the scripts declared, and the module (file URL) that declared each. */
  declared: Record<string, { type: MetricType; module: string }>;
  /** Throws unless the code runs in the init context, as k6 does. */
  initOnly(what: string, message: string): void;
  /** Throws when the code runs in the init context (or in no stage), as k6 does. */
  vuOnly(what: string, message: string): void;
}

declare global {
  var k6Shim: K6Shim;
  var __ENV: Record<string, string>;
}

/** The one version this file emulates, named in every refusal. */
const MINIMUM_K6 = 'k6 v0.48';
/** Marks the modules a k6 script loads, so the loader holds them (and only them) to k6's rules. */
const K6_MODULE = 'k6-module';
const OPEN_OUTSIDE_INIT =
  'the "open" function is only available in the init stage (i.e. the global scope), ' +
  'see https://grafana.com/docs/k6/latest/using-k6/test-lifecycle/ for more information';

const SOURCES: Record<string, string> = {
  k6: `
    export function check(value, sets, tags) {
      globalThis.k6Shim.vuOnly('check()', 'Using check() in the init context is not supported');
      let ok = true;
      for (const [name, test] of Object.entries(sets)) {
        // k6 calls a function with the value and takes anything else for its truthiness.
        const passed = Boolean(typeof test === 'function' ? test(value) : test);
        globalThis.k6Shim.checks.push({ name, passed });
        ok = ok && passed;
      }
      return ok;
    }
    export function sleep(seconds) { globalThis.k6Shim.sleeps.push(seconds); }
    export default { check, sleep };`,
  'k6/http': `
    export function file(data, filename, contentType) { return { data, filename, content_type: contentType }; }
    function request(method, url, body, params) {
      globalThis.k6Shim.vuOnly('http.' + method.toLowerCase() + '()', 'Making http requests in the init context is not supported');
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
    // Which module declared a metric, from the stack: a threshold may only name metrics of the script's own
    // modules, as in k6, where each script has its own registry.
    function declaringModule() {
      const frame = /(file:[^\\s)]+)\\?${K6_MODULE}/.exec(new Error().stack ?? '');
      return frame ? frame[1] : 'unknown';
    }
    class Metric {
      constructor(type, name) {
        globalThis.k6Shim.initOnly('new ' + this.constructor.name + '()', 'metrics must be declared in the init context');
        this.name = name;
        globalThis.k6Shim.declared[name] = { type, module: declaringModule() };
        globalThis.k6Shim.metrics[name] ??= [];
      }
      add(value, tags) {
        globalThis.k6Shim.vuOnly(this.name + '.add()', 'Adding to metrics in the init context is not supported');
        globalThis.k6Shim.metrics[this.name].push({ value, tags });
      }
    }
    export class Counter extends Metric { constructor(name) { super('counter', name); } }
    export class Gauge extends Metric { constructor(name) { super('gauge', name); } }
    export class Rate extends Metric { constructor(name) { super('rate', name); } }
    export class Trend extends Metric { constructor(name) { super('trend', name); } }
    export default { Counter, Gauge, Rate, Trend };`,
  'k6/crypto': `
    import { randomBytes as nodeRandomBytes } from 'node:crypto';
    export function randomBytes(size) { return new Uint8Array(nodeRandomBytes(size)).buffer; }
    export default { randomBytes };`,
  'k6/execution': `
    export default {
      instance: {
        get currentTestRunDuration() {
          globalThis.k6Shim.vuOnly('exec.instance', 'getting instance information in the init context is not supported');
          return globalThis.k6Shim.elapsedMs;
        },
      },
    };`,
};

const SHIM_URL = 'k6-shim:';

const isK6Module = (url: string | undefined): boolean =>
  url !== undefined && url.startsWith('file:') && new URL(url).searchParams.has(K6_MODULE);

const markK6Module = (url: string): string => {
  const marked = new URL(url);
  marked.search = K6_MODULE;
  return marked.href;
};

/**
 * Loader hook: `k6` and `k6/...` resolve to the stand-ins above. What a k6 module imports stays a k6
 * module; k6 loads no Node built-ins or packages, so neither may a k6 module here.
 */
export async function resolve(
  specifier: string,
  context: { parentURL?: string },
  next: (specifier: string, context: unknown) => Promise<{ url: string }>,
): Promise<{ url: string; shortCircuit?: boolean }> {
  if (specifier in SOURCES) return { url: `${SHIM_URL}${specifier}`, shortCircuit: true };
  if (!isK6Module(context.parentURL)) return next(specifier, context);
  if (specifier === 'k6' || specifier.startsWith('k6/'))
    throw new Error(`${context.parentURL}: unknown module: ${specifier} (the stand-in has no such k6 module)`);
  if (!/^(\.{1,2}\/|\/|file:)/.test(specifier))
    throw new Error(`${context.parentURL}: k6 cannot import "${specifier}": a k6 script imports k6 modules and files`);
  const resolved = await next(specifier, context);
  return { url: markK6Module(resolved.url), shortCircuit: true };
}

/** Loader hook: the stand-ins' source, and k6 modules only once they parse as k6 would parse them. */
export async function load(
  url: string,
  context: unknown,
  next: (url: string, context: unknown) => Promise<unknown>,
): Promise<unknown> {
  if (url.startsWith(SHIM_URL))
    return { format: 'module', source: SOURCES[url.slice(SHIM_URL.length)], shortCircuit: true };
  if (!isK6Module(url)) return next(url, context);
  const file = fileURLToPath(url);
  const source = readFileSync(file, 'utf8');
  assertK6Syntax(file, source);
  return { format: 'module', source, shortCircuit: true };
}

/** Throws k6's SyntaxError for syntax newer than ES2017, which k6 before v0.53 cannot parse. */
export function assertK6Syntax(file: string, source: string): void {
  try {
    parse(source, { ecmaVersion: 2017, sourceType: 'module' });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new SyntaxError(
      `${file}: ${message}: ${MINIMUM_K6} parses ES modules as ES2017 ` +
        '(no object spread or rest, ?., ??, catch without a binding, class fields)',
      { cause: err },
    );
  }
}

function defineGlobal(name: string, value: unknown): void {
  Object.defineProperty(globalThis, name, { value, configurable: true, writable: true, enumerable: false });
}

/**
 * Puts the shim in `stage`, defining __VU and __ITER as k6 does there: deleted, they are undefined, and reading
 * one is a ReferenceError. __VU is 0 in the init context as in k6's first one (the VUs' own init contexts, run
 * again per VU, are not emulated: a module runs once here).
 */
function enter(stage: Stage, vu = 0, iteration = 0): void {
  globalThis.k6Shim.stage = stage;
  if (stage === 'none') Reflect.deleteProperty(globalThis, '__VU');
  else defineGlobal('__VU', stage === 'iteration' ? vu : 0);
  if (stage === 'iteration') defineGlobal('__ITER', iteration);
  else Reflect.deleteProperty(globalThis, '__ITER');
}

function inStage<T>(stage: Stage, run: () => T, vu?: number, iteration?: number): T {
  if (globalThis.k6Shim.stage !== 'none') throw new Error(`${stage} started inside ${globalThis.k6Shim.stage}`);
  enter(stage, vu, iteration);
  try {
    return run();
  } finally {
    enter('none');
  }
}

/** Where open() resolves relative paths: the directory of the script being loaded, as in k6. */
let openBase = process.cwd();

/** Installs the stand-ins and k6's globals; the scripts read `env` when they are first loaded. */
export function installK6Shim(env: Record<string, string>): K6Shim {
  register(import.meta.url);
  globalThis.__ENV = env;
  const refuse = (what: string, message: string, allowed: (stage: Stage) => boolean) => {
    const stage = globalThis.k6Shim.stage;
    if (stage === 'none') throw new Error(`${what} ran outside any k6 stage: call it through runIteration or the like`);
    if (!allowed(stage)) throw new Error(message);
  };
  globalThis.k6Shim = {
    requests: [],
    responses: [],
    sleeps: [],
    checks: [],
    metrics: {},
    elapsedMs: 0,
    stage: 'none',
    declared: {},
    initOnly: (what, message) => refuse(what, message, (stage) => stage === 'init'),
    vuOnly: (what, message) => refuse(what, message, (stage) => stage !== 'init'),
  };
  defineGlobal('open', (file: string, mode?: string) => {
    if (globalThis.k6Shim.stage !== 'init') throw new Error(OPEN_OUTSIDE_INIT);
    const bytes = readFileSync(path.resolve(openBase, file));
    return mode === 'b' ? new Uint8Array(bytes).buffer : bytes.toString('utf8');
  });
  enter('none');
  return globalThis.k6Shim;
}

/** The files a script loads (itself and its relative imports, transitively), as file URLs. */
function moduleGraph(file: string, seen = new Set<string>()): Set<string> {
  const url = pathToFileURL(file).href;
  if (seen.has(url)) return seen;
  seen.add(url);
  const program = parse(readFileSync(file, 'utf8'), { ecmaVersion: 'latest', sourceType: 'module' });
  for (const node of program.body) {
    const source =
      node.type === 'ImportDeclaration' ||
      node.type === 'ExportAllDeclaration' ||
      node.type === 'ExportNamedDeclaration'
        ? node.source?.value
        : undefined;
    if (typeof source === 'string' && source.startsWith('.'))
      moduleGraph(path.resolve(path.dirname(file), source), seen);
  }
  return seen;
}

/**
 * Loads a k6 script (or one of its modules) as k6 would: parsed as ES2017, run in the init context, and,
 * when it exports options, refused if k6 would refuse them. Loading it again returns the same module.
 */
export async function loadK6Script<T>(file: string): Promise<T> {
  if (globalThis.k6Shim.stage !== 'none') throw new Error(`init started inside ${globalThis.k6Shim.stage}`);
  openBase = path.dirname(file);
  enter('init');
  let module: Record<string, unknown>;
  try {
    module = (await import(markK6Module(pathToFileURL(file).href))) as Record<string, unknown>;
  } finally {
    enter('none');
  }
  if (module.options !== undefined || typeof module.default === 'function') {
    const graph = moduleGraph(file);
    const metrics: Record<string, MetricType> = { ...BUILTIN_METRICS };
    for (const [name, metric] of Object.entries(globalThis.k6Shim.declared))
      if (graph.has(metric.module)) metrics[name] = metric.type;
    const errors = optionsErrors(module, metrics);
    if (errors.length) throw new Error(`k6 would not start ${file}:\n  ${errors.join('\n  ')}`);
  }
  return module as T;
}

/** Runs `setup()` as k6 does: once, in a VU of its own (__VU 0, no __ITER). */
export function runSetup<T>(setup: () => T): T {
  return inStage('setup', setup);
}

/** Runs one iteration of a scenario function as VU `vu`'s iteration `iteration`, with setup's data. */
export function runIteration<T>(
  fn: (data?: unknown) => T,
  { vu = 1, iteration = 0, data }: { vu?: number; iteration?: number; data?: unknown } = {},
): T {
  return inStage('iteration', () => fn(data), vu, iteration);
}

/** Runs `teardown(data)` as k6 does: once, after the iterations, in a VU of its own. */
export function runTeardown<T>(teardown: (data?: unknown) => T, data?: unknown): T {
  return inStage('teardown', () => teardown(data));
}

/**
 * Runs `handleSummary(data)` and checks its answer as k6 does: an object whose keys are `stdout`, `stderr`
 * or file paths and whose values are strings or ArrayBuffers.
 */
export function runHandleSummary(handleSummary: (data: unknown) => unknown, data: unknown): Record<string, string> {
  const result = inStage('handleSummary', () => handleSummary(data));
  if (result === undefined || result === null) return {};
  if (typeof result !== 'object' || Array.isArray(result))
    throw new Error('handleSummary() should return a map with string keys');
  for (const [key, value] of Object.entries(result))
    if (typeof value !== 'string' && !(value instanceof ArrayBuffer))
      throw new Error(
        `error handling summary object ${key}: invalid type ${typeof value}, expected string or ArrayBuffer`,
      );
  return result as Record<string, string>;
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
