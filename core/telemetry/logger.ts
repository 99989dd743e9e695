// JSON lines on stdout. Each line carries the active span's trace and span ids, and no line ever
// carries a credential: token-like fields are censored and URLs lose their password.
import { isSpanContextValid, trace } from '@opentelemetry/api';
import { pino, type DestinationStream, type Logger, type LoggerOptions as PinoOptions } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  level: string;
  name: string;
  /** Where lines go (default stdout); tests pass a stream to read them. */
  destination?: DestinationStream;
}

/** Fields whose value is a secret wherever they appear (one level deep, and under `headers`). */
const SECRET_FIELDS = ['authorization', 'cookie', 'token', 'tokens', 'password', 'secret', 'apiTokens', 'api_tokens', 'API_TOKENS'];
/** Connection URLs: logged without their password, so the address still helps. */
const URL_FIELDS = ['databaseUrl', 'redisUrl', 'DATABASE_URL', 'REDIS_URL'];

const REDACTED_PATHS = [...SECRET_FIELDS, ...URL_FIELDS].flatMap((field) => [field, `*.${field}`, `headers.${field}`, `*.headers.${field}`]);

const REDACTED = '[redacted]';

const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^\s/:@]*):[^\s/@]*@/gi;

/** The text with every `scheme://user:password@` reduced to `scheme://user:[redacted]@`. */
export function withoutUrlPasswords(text: string): string {
  return text.includes('@') ? text.replace(URL_PASSWORD, `$1:${REDACTED}@`) : text;
}

export function createLogger(options: LoggerOptions): Logger {
  const settings: PinoOptions = {
    name: options.name,
    level: options.level,
    base: { service: options.name },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: activeTraceIds,
    formatters: { level: (label) => ({ level: label }), log: (fields) => scrub(fields, 0) as Record<string, unknown> },
    serializers: { err: scrubbedError },
    hooks: {
      logMethod(args, method) {
        method.apply(this, args.map((arg) => (typeof arg === 'string' ? withoutUrlPasswords(arg) : arg)) as Parameters<typeof method>);
      },
    },
    redact: {
      paths: REDACTED_PATHS,
      censor: (value: unknown) => (typeof value === 'string' && value.includes('://') ? withoutUrlPasswords(value) : REDACTED),
    },
  };
  return options.destination ? pino(settings, options.destination) : pino(settings);
}

/** pino's error fields (type, message, stack, code, ...) with URL passwords stripped. */
function scrubbedError(err: Error): Record<string, unknown> {
  return Object.fromEntries(Object.entries(pino.stdSerializers.err(err)).map(([key, value]) => [key, scrub(value, 1)]));
}

/** trace_id and span_id of the active span, so a log line leads to its trace (nothing while tracing is off). */
function activeTraceIds(): Record<string, string> {
  const spanContext = trace.getActiveSpan()?.spanContext();
  return spanContext && isSpanContextValid(spanContext) ? { trace_id: spanContext.traceId, span_id: spanContext.spanId } : {};
}

/** Strips URL passwords from the strings of a log line's fields (plain objects and arrays, a few levels deep). */
function scrub(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return withoutUrlPasswords(value);
  if (depth > 4 || value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map((item) => scrub(item, depth + 1));
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return value;
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, scrub(item, depth + 1)]));
}
