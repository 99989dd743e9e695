// Bearer-token authentication, off unless API_TOKENS or API_TOKENS_FILE is set. Tokens are compared in
// constant time (as equal-length digests, against every token, without an early exit) and never logged.
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type Koa from 'koa';
import { tokens as parseTokens } from '../core/config.js';
import type { Logger } from '../core/telemetry/logger.js';
import { AppError } from './errors.js';
import { isPublicPath } from './routes.js';

const RELOAD_INTERVAL_MS = 10_000;
const REALM = 'Bearer realm="file-processor"';

const digest = (token: string): Buffer => createHash('sha256').update(token).digest();

export class TokenSet {
  private fromFile: Buffer[] = [];
  private readonly fixed: Buffer[];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    fixed: string[],
    private readonly file: string | null,
    private readonly logger: Logger,
    private readonly reloadIntervalMs = RELOAD_INTERVAL_MS,
  ) {
    this.fixed = fixed.map(digest);
  }

  get enabled(): boolean {
    return this.fixed.length > 0 || this.file !== null;
  }

  /** Reads the token file (failing if it cannot), then re-reads it periodically so rotation needs no restart. */
  async start(): Promise<void> {
    if (!this.file) return;
    this.fromFile = await this.read(this.file);
    this.timer = setInterval(() => {
      this.read(this.file!).then(
        (tokens) => (this.fromFile = tokens),
        (err: unknown) =>
          this.logger.error({ err }, 'could not re-read API_TOKENS_FILE; keeping the tokens read before'),
      );
    }, this.reloadIntervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** True when the token is one of ours. Its time depends on the number of tokens, not on their bytes. */
  accepts(token: string): boolean {
    const presented = digest(token);
    let match = false;
    for (const known of [...this.fixed, ...this.fromFile]) match = timingSafeEqual(presented, known) || match;
    return match;
  }

  private async read(file: string): Promise<Buffer[]> {
    return parseTokens(await readFile(file, 'utf8'), 'API_TOKENS_FILE').map(digest);
  }
}

/** Who is calling, as rate limits and idempotency keys scope it (set by `authenticate`). */
export const callerOf = (ctx: Koa.Context): string => (ctx.state.caller as string | undefined) ?? 'anonymous';

/**
 * Requires `Authorization: Bearer <token>` when tokens are configured, and names the caller in
 * `ctx.state.caller` (a digest of the token, or the address without tokens): see `callerOf`.
 */
export function authenticate(tokens: TokenSet): Koa.Middleware {
  return async (ctx, next) => {
    const header = ctx.get('Authorization');
    const bearer = /^Bearer +([\x21-\x7e]+) *$/i.exec(header)?.[1];
    if (!tokens.enabled) {
      ctx.state.caller = `ip:${ctx.ip}`;
    } else if (bearer && tokens.accepts(bearer)) {
      ctx.state.caller = `token:${digest(bearer).toString('hex').slice(0, 32)}`;
    } else if (!isPublicPath(ctx.path) && ctx.method !== 'OPTIONS') {
      throw new AppError(
        'unauthorized',
        header ? 'The bearer token is not valid.' : 'Send a bearer token: `Authorization: Bearer <token>`.',
        { headers: { 'WWW-Authenticate': header ? `${REALM}, error="invalid_token"` : REALM } },
      );
    }
    await next();
  };
}
