// Small JSON request bodies (a direct upload's announcement, a webhook endpoint), read whole and parsed. They are
// a few hundred bytes, so a body over the cap is not one of them and is not read further.
import type Koa from 'koa';
import { AppError } from './errors.js';

export interface JsonBodyOptions {
  /** What the body is, for the errors: "announcement". */
  what: string;
  /** What it looks like, for the errors: '{"name", "size", "sha256"}'. */
  shape: string;
  maxBytes: number;
}

/** The parsed body (any JSON value); 415 unless it is application/json, 400 when it is too long or not JSON. */
export async function readJsonBody(ctx: Koa.Context, options: JsonBodyOptions): Promise<unknown> {
  if (!ctx.is('application/json')) {
    throw new AppError('unsupported_media_type', `Send the ${options.what} as application/json: ${options.shape}.`);
  }
  const raw = await readSmallBody(ctx, options);
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    throw new AppError('invalid_body', `The body is not JSON; send ${options.shape}.`);
  }
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
