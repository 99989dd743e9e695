// JSON request bodies (a direct upload's announcement, a webhook endpoint, a bulk reprocess's filters), read whole,
// parsed and checked against the schema the OpenAPI document shows for them. They are a few hundred bytes, so a body
// over the cap is not one of them and is not read further.
import type { Static, TObject } from '@sinclair/typebox';
import type Koa from 'koa';
import { AppError } from './errors.js';
import { validated } from './validation.js';

export interface JsonBodyOptions {
  /** What the body is, for the errors: "announcement". */
  what: string;
  maxBytes: number;
  /** A request without a body (no Content-Type, no length) is an empty object: every field of the schema is optional. */
  mayBeEmpty?: boolean;
}

/**
 * The body, as `schema` types it: 415 unless it is application/json, 400 `invalid_body` when it is too long, not
 * JSON, gives a field twice, holds NUL, or is not what the schema says (an entry per field).
 */
export async function readBody<T extends TObject>(
  ctx: Koa.Context,
  schema: T,
  options: JsonBodyOptions,
): Promise<Static<T>> {
  const shape = shapeOf(schema);
  if (options.mayBeEmpty && !ctx.request.type && !hasBody(ctx)) return validated(schema, {}, options.what);
  if (!ctx.is('application/json')) {
    throw new AppError('unsupported_media_type', `Send the ${options.what} as application/json: ${shape}.`);
  }
  const text = (await readSmallBody(ctx, options)).toString('utf8');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new AppError('invalid_body', `The body is not JSON; send ${shape}.`);
  }
  // JSON.parse keeps the last of a field given twice; which one the client meant is not ours to guess.
  const twice = firstDuplicateKey(text);
  if (twice !== null) throw fieldError(twice, 'This field is given twice; give it once.');
  // PostgreSQL's text refuses NUL: a 400 here, not a 500 from the statement.
  const withNul = pathToNul(body);
  if (withNul !== null) throw fieldError(withNul, 'This field holds a NUL character (\\u0000), which is not allowed.');
  return validated(schema, body, options.what);
}

/** `{"name", "size", "sha256"}`, the required fields first, for a sentence about what to send. */
function shapeOf(schema: TObject): string {
  const required = new Set(schema.required ?? []);
  const fields = Object.keys(schema.properties).sort((a, b) => Number(required.has(b)) - Number(required.has(a)));
  const listed = `{${fields.map((field) => `"${field}"`).join(', ')}}`;
  return required.size === 0 ? `${listed}, each optional` : listed;
}

/** Whether the request says it carries a body (a length above zero, or chunks). */
const hasBody = (ctx: Koa.Context): boolean =>
  Number(ctx.get('Content-Length') || 0) > 0 || ctx.get('Transfer-Encoding') !== '';

const fieldError = (field: string, message: string) =>
  new AppError('invalid_body', 'Some fields are invalid; see `errors`.', { errors: [{ field, message }] });

/**
 * The first key given twice in one object of `text`, valid JSON (already parsed): keys are compared as JSON.parse
 * reads them, so `"a"` and `"\u0061"` are the same key.
 */
export function firstDuplicateKey(text: string): string | null {
  // The keys of each open object, innermost last; null for an array.
  const open: Array<Set<string> | null> = [];
  let expectKey = false;
  for (let at = 0; at < text.length; at++) {
    const char = text[at];
    if (char === '"') {
      let end = at + 1;
      while (text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      const keys = open.at(-1);
      if (expectKey && keys) {
        const key = JSON.parse(text.slice(at, end + 1)) as string;
        if (keys.has(key)) return key;
        keys.add(key);
        expectKey = false;
      }
      at = end;
    } else if (char === '{') {
      open.push(new Set());
      expectKey = true;
    } else if (char === '[') open.push(null);
    else if (char === '}' || char === ']') open.pop();
    else if (char === ',') expectKey = open.at(-1) instanceof Set;
  }
  return null;
}

/** Where in `value` a string (or a key) holds NUL, as a dotted path; null when none does. */
function pathToNul(value: unknown, path = ''): string | null {
  if (typeof value === 'string') return value.includes('\0') ? path || '(body)' : null;
  if (typeof value !== 'object' || value === null) return null;
  for (const [key, field] of Object.entries(value)) {
    const at = path ? `${path}.${key}` : key;
    if (key.includes('\0')) return at;
    const found = pathToNul(field, at);
    if (found !== null) return found;
  }
  return null;
}

async function readSmallBody(ctx: Koa.Context, { what, maxBytes }: JsonBodyOptions): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > maxBytes) {
      throw new AppError('invalid_body', `The ${what} is longer than ${maxBytes} bytes; it is not one.`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
