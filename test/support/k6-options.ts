// What k6 checks in a script's exported `options` and exports before it runs anything, emulated so that a
// test here fails where `k6 run` would refuse to start. Each rule follows k6's source: scenarios are decoded
// strictly (lib/executor: an unknown field, a missing required one, or a fraction where k6 decodes an
// integer is an error), thresholds follow metrics/thresholds_parser.go and may only name metrics that exist,
// with aggregations their type has (metrics/thresholds.go), and summaryTrendStats are k6's stats or p(N).

export type MetricType = 'counter' | 'gauge' | 'rate' | 'trend';

/** The metrics k6 itself emits for HTTP tests, which a threshold may name without declaring them. */
export const BUILTIN_METRICS: Readonly<Record<string, MetricType>> = {
  checks: 'rate',
  data_received: 'counter',
  data_sent: 'counter',
  dropped_iterations: 'counter',
  group_duration: 'trend',
  http_req_blocked: 'trend',
  http_req_connecting: 'trend',
  http_req_duration: 'trend',
  http_req_failed: 'rate',
  http_req_receiving: 'trend',
  http_req_sending: 'trend',
  http_req_tls_handshaking: 'trend',
  http_req_waiting: 'trend',
  http_reqs: 'counter',
  iteration_duration: 'trend',
  iterations: 'counter',
  vus: 'gauge',
  vus_max: 'gauge',
};

const AGGREGATIONS: Record<MetricType, string[]> = {
  counter: ['count', 'rate'],
  gauge: ['value'],
  rate: ['rate'],
  trend: ['avg', 'min', 'max', 'med', 'p'],
};

/** In the order k6 tries them: the first one found splits the expression. */
const OPERATORS = ['<=', '<', '>=', '>', '===', '==', '!='];

type FieldKind = 'int' | 'duration' | 'stages' | 'string' | 'strings' | 'object';

const BASE_FIELDS: Record<string, FieldKind> = {
  executor: 'string',
  startTime: 'duration',
  gracefulStop: 'duration',
  env: 'strings',
  exec: 'string',
  tags: 'strings',
  options: 'object',
};

interface Executor {
  fields: Record<string, FieldKind>;
  required: string[];
  /** The executor's own Validate(), on fields already known to be of the right kind. */
  check(config: Record<string, unknown>, errors: string[]): void;
}

const MIN_DURATION_MS = 1000;

const EXECUTORS: Record<string, Executor> = {
  'shared-iterations': {
    fields: { vus: 'int', iterations: 'int', maxDuration: 'duration' },
    required: [],
    check(config, errors) {
      const vus = intOr(config.vus, 1);
      if (vus <= 0) errors.push('the number of VUs must be more than 0');
      if (intOr(config.iterations, 1) < vus)
        errors.push("the number of iterations can't be less than the number of VUs");
    },
  },
  'per-vu-iterations': {
    fields: { vus: 'int', iterations: 'int', maxDuration: 'duration' },
    required: [],
    check(config, errors) {
      if (intOr(config.vus, 1) <= 0) errors.push('the number of VUs must be more than 0');
      if (intOr(config.iterations, 1) <= 0) errors.push('the number of iterations must be more than 0');
    },
  },
  'constant-vus': {
    fields: { vus: 'int', duration: 'duration' },
    required: ['duration'],
    check(config, errors) {
      if (intOr(config.vus, 1) <= 0) errors.push('the number of VUs must be more than 0');
      if (durationMs(config.duration) < MIN_DURATION_MS) errors.push('the duration must be at least 1s');
    },
  },
  'ramping-vus': {
    fields: { startVUs: 'int', stages: 'stages', gracefulRampDown: 'duration' },
    required: ['stages'],
    check(config, errors) {
      if (intOr(config.startVUs, 1) < 0) errors.push("the number of start VUs can't be negative");
    },
  },
  'constant-arrival-rate': {
    fields: { rate: 'int', timeUnit: 'duration', duration: 'duration', preAllocatedVUs: 'int', maxVUs: 'int' },
    required: ['rate', 'duration', 'preAllocatedVUs'],
    check(config, errors) {
      if (intOr(config.rate, 1) <= 0) errors.push('the iteration rate must be more than 0');
      if (durationMs(config.duration) < MIN_DURATION_MS) errors.push('the duration must be at least 1s');
      checkArrivalRate(config, errors);
    },
  },
  'ramping-arrival-rate': {
    fields: { startRate: 'int', timeUnit: 'duration', stages: 'stages', preAllocatedVUs: 'int', maxVUs: 'int' },
    required: ['stages', 'preAllocatedVUs'],
    check(config, errors) {
      if (intOr(config.startRate, 0) < 0) errors.push("the startRate value can't be negative");
      checkArrivalRate(config, errors);
    },
  },
  'externally-controlled': {
    fields: { vus: 'int', maxVUs: 'int', duration: 'duration' },
    required: ['duration'],
    check(config, errors) {
      if (intOr(config.vus, 0) < 0) errors.push("the number of VUs can't be negative");
    },
  },
};

function checkArrivalRate(config: Record<string, unknown>, errors: string[]): void {
  if (config.timeUnit !== undefined && durationMs(config.timeUnit) <= 0)
    errors.push('the timeUnit must be more than 0');
  const preAllocated = intOr(config.preAllocatedVUs, 0);
  if (preAllocated < 0) errors.push("the number of preAllocatedVUs can't be negative");
  if (config.maxVUs !== undefined && intOr(config.maxVUs, 0) < preAllocated)
    errors.push("maxVUs can't be less than preAllocatedVUs");
}

const intOr = (value: unknown, fallback: number): number => (typeof value === 'number' ? value : fallback);

const GO_DURATION = /^[-+]?(?:(?:\d+\.?\d*|\.\d+)(?:ns|us|µs|μs|ms|s|m|h|d))+$/;
const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  μs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
UNIT_MS.d = 24 * UNIT_MS.h!;

/** A k6 duration (a Go duration string, `d` for days allowed, or a number of milliseconds), or NaN. */
function durationMs(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value !== 'string') return NaN;
  if (value === '0') return 0;
  if (!GO_DURATION.test(value)) return NaN;
  const sign = value.startsWith('-') ? -1 : 1;
  let total = 0;
  for (const [, amount, unit] of value.matchAll(/(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h|d)/g))
    total += Number(amount) * UNIT_MS[unit!]!;
  return sign * total;
}

function checkField(kind: FieldKind, value: unknown): string | null {
  switch (kind) {
    case 'int':
      return typeof value === 'number' && Number.isInteger(value) ? null : 'must be an integer';
    case 'duration':
      return Number.isNaN(durationMs(value)) ? 'must be a duration like "30s" or "1m30s"' : null;
    case 'string':
      return typeof value === 'string' ? null : 'must be a string';
    case 'strings':
      return isObject(value) && Object.values(value).every((v) => typeof v === 'string')
        ? null
        : 'must map names to strings';
    case 'object':
      return isObject(value) ? null : 'must be an object';
    case 'stages':
      return Array.isArray(value) ? null : 'must be an array of stages';
  }
}

function checkStages(stages: unknown[], errors: string[]): void {
  if (stages.length === 0) errors.push('at least one stage has to be specified');
  stages.forEach((stage, i) => {
    const n = i + 1;
    if (!isObject(stage)) {
      errors.push(`stage ${n} must be an object`);
      return;
    }
    for (const key of Object.keys(stage))
      if (key !== 'duration' && key !== 'target') errors.push(`stage ${n}: json: unknown field "${key}"`);
    if (stage.duration === undefined) errors.push(`stage ${n} doesn't have a duration`);
    else if (Number.isNaN(durationMs(stage.duration))) errors.push(`stage ${n}: the duration is not a duration`);
    else if (durationMs(stage.duration) < 0) errors.push(`the duration for stage ${n} can't be negative`);
    if (stage.target === undefined) errors.push(`stage ${n} doesn't have a target`);
    else if (checkField('int', stage.target)) errors.push(`stage ${n}: the target must be an integer`);
    else if ((stage.target as number) < 0) errors.push(`the target for stage ${n} can't be negative`);
  });
}

function scenarioErrors(name: string, config: unknown, exports: Record<string, unknown>): string[] {
  const errors: string[] = [];
  if (!/^[0-9a-zA-Z_-]+$/.test(name))
    errors.push('the scenario name should contain only numbers, latin letters, underscores, and dashes');
  if (!isObject(config)) return [...errors, 'must be an object'];
  const executor = typeof config.executor === 'string' ? EXECUTORS[config.executor] : undefined;
  if (!executor) return [...errors, `unknown executor type "${String(config.executor)}"`];
  const fields: Record<string, FieldKind> = { ...BASE_FIELDS, ...executor.fields };
  let wellTyped = true;
  for (const [key, value] of Object.entries(config)) {
    const kind = fields[key];
    const problem = kind === undefined ? 'json: unknown field' : checkField(kind, value);
    if (problem) {
      errors.push(`${key} ${problem}`);
      wellTyped = false;
    } else if (kind === 'stages') checkStages(value as unknown[], errors);
  }
  for (const key of executor.required) {
    if (config[key] === undefined) {
      errors.push(`${key} is required by ${String(config.executor)}`);
      wellTyped = false;
    }
  }
  if (wellTyped) executor.check(config, errors);
  if (config.exec === '') errors.push('exec value cannot be empty');
  const fn = typeof config.exec === 'string' && config.exec !== '' ? config.exec : 'default';
  if (typeof exports[fn] !== 'function') errors.push(`function '${fn}' not found in exports`);
  return errors;
}

/** k6's ParseMetricName: `name` or `name{tag:value,...}`. */
function parseMetricName(key: string): { name: string; tags: string[] } | string {
  const open = key.indexOf('{');
  const close = key.lastIndexOf('}');
  if (open === -1 && close === -1) return { name: key, tags: [] };
  if (open === -1 || close === -1) return `metric "${key}" has unmatched opening/close curly brace`;
  if (close < open) return `metric "${key}" closing curly brace appears before opening one`;
  if (close !== key.length - 1) return `metric "${key}" lacks a closing curly brace in its last position`;
  const tags = key.slice(open + 1, close).split(',');
  for (const tag of tags) {
    const colon = tag.indexOf(':');
    if (colon === -1 || colon === tag.length - 1) return `metric "${tag}" tag expression is malformed`;
  }
  return { name: key.slice(0, open), tags: tags.map((tag) => tag.trim()) };
}

const GO_FLOAT = /^[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)$/i;

/** k6's parseThresholdExpression: `aggregation operator value`, giving the aggregation (`p` for p(N)). */
function parseThreshold(source: string): { aggregation: string } | string {
  const operator = OPERATORS.find((op) => source.includes(op));
  if (operator === undefined)
    return `failed parsing threshold expression "${source}"; reason: malformed threshold expression`;
  const at = source.indexOf(operator);
  const method = source.slice(0, at).trim();
  const value = source.slice(at + operator.length).trim();
  let aggregation: string;
  if (['value', 'count', 'rate', 'avg', 'min', 'med', 'max', 'p'].includes(method)) aggregation = method;
  else if (method.startsWith('p(') && method.endsWith(')') && GO_FLOAT.test(method.slice(2, -1))) aggregation = 'p';
  else return `failed parsing threshold expression's "${source}" left hand side`;
  if (!GO_FLOAT.test(value)) return `failed parsing threshold expression's "${source}" right hand side`;
  return { aggregation };
}

function thresholdErrors(key: string, value: unknown, metrics: Record<string, MetricType>): string[] {
  const parsed = parseMetricName(key);
  if (typeof parsed === 'string') return [`parsing metric name failed, ${parsed}`];
  const type = metrics[parsed.name];
  if (type === undefined) return [`invalid threshold defined on ${key}; reason: no metric name "${parsed.name}" found`];
  if (!Array.isArray(value)) return ['must be an array of thresholds'];
  const errors: string[] = [];
  for (const threshold of value) {
    let source: unknown = threshold;
    if (isObject(threshold)) {
      source = threshold.threshold;
      if (threshold.abortOnFail !== undefined && typeof threshold.abortOnFail !== 'boolean')
        errors.push('abortOnFail must be a boolean');
      if (threshold.delayAbortEval !== undefined && Number.isNaN(durationMs(threshold.delayAbortEval)))
        errors.push('delayAbortEval must be a duration');
    }
    if (typeof source !== 'string') {
      errors.push(`${JSON.stringify(threshold)} is neither an expression nor { threshold: expression }`);
      continue;
    }
    const expression = parseThreshold(source);
    if (typeof expression === 'string') errors.push(expression);
    else if (!AGGREGATIONS[type].includes(expression.aggregation))
      errors.push(
        `invalid threshold "${source}"; reason: unsupported aggregation method ${expression.aggregation} on metric of type ${type}. ` +
          `supported aggregation methods for this metric are: ${AGGREGATIONS[type].join(', ')}`,
      );
  }
  return errors;
}

function trendStatError(stat: unknown): string | null {
  if (typeof stat !== 'string') return `${JSON.stringify(stat)} is not a trend stat`;
  if (['avg', 'min', 'med', 'max', 'count'].includes(stat)) return null;
  if (!stat.startsWith('p(') || !stat.endsWith(')')) return `invalid trend stat '${stat}', unknown format`;
  const percentile = Number(stat.slice(2, -1));
  return GO_FLOAT.test(stat.slice(2, -1)) && percentile >= 0 && percentile <= 100
    ? null
    : `invalid percentile trend stat value '${stat}', provide a number between 0 and 100`;
}

/**
 * Everything k6 would refuse in a script's options and exports, one line each; empty when k6 would start.
 * `metrics` are those the script can see: k6's own and the ones its modules declared.
 */
export function optionsErrors(exports: Record<string, unknown>, metrics: Record<string, MetricType>): string[] {
  const errors: string[] = [];
  for (const name of ['setup', 'teardown', 'handleSummary'])
    if (exports[name] !== undefined && typeof exports[name] !== 'function')
      errors.push(`exported '${name}' must be a function`);
  if (!Object.values(exports).some((value) => typeof value === 'function'))
    errors.push('no exported functions in script');
  const options = exports.options;
  if (options === undefined) return errors;
  if (!isObject(options)) return [...errors, 'options must be an object'];
  if (options.scenarios !== undefined) {
    if (!isObject(options.scenarios)) errors.push('options.scenarios must be an object');
    else
      for (const [name, config] of Object.entries(options.scenarios))
        errors.push(...scenarioErrors(name, config, exports).map((error) => `scenario ${name}: ${error}`));
  }
  if (options.thresholds !== undefined) {
    if (!isObject(options.thresholds)) errors.push('options.thresholds must be an object');
    else
      for (const [key, value] of Object.entries(options.thresholds))
        errors.push(...thresholdErrors(key, value, metrics).map((error) => `threshold ${key}: ${error}`));
  }
  if (options.summaryTrendStats !== undefined) {
    if (!Array.isArray(options.summaryTrendStats)) errors.push('options.summaryTrendStats must be an array');
    else
      for (const stat of options.summaryTrendStats) {
        const error = trendStatError(stat);
        if (error) errors.push(`summaryTrendStats: ${error}`);
      }
  }
  for (const key of ['setupTimeout', 'teardownTimeout'])
    if (options[key] !== undefined && Number.isNaN(durationMs(options[key])))
      errors.push(`options.${key} must be a duration`);
  return errors;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
