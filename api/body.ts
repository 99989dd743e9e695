// A request body read within bounds, as nginx's client_max_body_size and client_body_timeout: a cap on its
// size, and a floor on its rate over each window of time the client had to send. Past either, nothing more
// is read, and the answer closes the connection rather than read on to the next request.
import type { IncomingMessage } from 'node:http';
import type { Writable } from 'node:stream';

export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
  constructor(readonly maxBytes: number) {
    super(`The request body is larger than ${maxBytes} bytes.`);
  }
}

export class BodyTooSlowError extends Error {
  override name = 'BodyTooSlowError';
  constructor(readonly rate: MinRate) {
    super(`The request body sent fewer than ${rate.bytesPerSecond} bytes a second over ${rate.windowMs} ms.`);
  }
}

/** A body slower than `bytesPerSecond` over a window of `windowMs` is cut; 0 bytes a second never is. */
export interface MinRate {
  bytesPerSecond: number;
  windowMs: number;
}

export interface BodyLimits {
  maxBytes: number;
  minRate: MinRate;
}

/**
 * Feeds the body of `req` into `sink`, and ends `sink` with it. `done` resolves once the body was read to its
 * end, and rejects when reading stopped before: past a limit, or the client went away.
 */
export class BodyReader {
  readonly done: Promise<void>;
  private received = 0;
  private sink: Writable | null;
  private settled = false;
  private resolve!: () => void;
  private reject!: (err: Error) => void;

  // The rate's window counts only time the client could send: while the sink holds the body back, it stops.
  private rateTimer: NodeJS.Timeout | undefined;
  private windowStartedAt = Date.now();
  private windowBytes = 0;
  private heldMs = 0;
  private heldSince: number | null = null;

  constructor(
    private readonly req: IncomingMessage,
    sink: Writable,
    private readonly limits: BodyLimits,
  ) {
    this.sink = sink;
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // Who rejects `done` may not be listening yet; an unhandled rejection would stop the process.
    this.done.catch(() => undefined);
    req.on('data', this.onData);
    req.once('end', this.onEnd);
    req.on('error', this.stop);
    req.once('close', this.onClose);
    if (limits.minRate.bytesPerSecond > 0) this.rateTimer = setTimeout(this.checkRate, limits.minRate.windowMs);
  }

  /** Feeds the sink no more: the rest of the body is read and dropped, within the same limits. */
  discard(): void {
    if (!this.sink) return;
    this.sink.off('drain', this.onDrain);
    this.sink = null;
    this.onDrain();
  }

  private readonly onData = (chunk: Buffer) => {
    this.received += chunk.length;
    this.windowBytes += chunk.length;
    if (this.received > this.limits.maxBytes) return this.stop(new BodyTooLargeError(this.limits.maxBytes));
    if (this.sink && !this.sink.write(chunk)) {
      this.req.pause();
      this.heldSince = Date.now();
      this.sink.once('drain', this.onDrain);
    }
  };

  private readonly onDrain = () => {
    if (this.heldSince !== null) {
      this.heldMs += Date.now() - this.heldSince;
      this.heldSince = null;
    }
    if (!this.settled) this.req.resume();
  };

  private readonly checkRate = () => {
    const { bytesPerSecond, windowMs } = this.limits.minRate;
    const now = Date.now();
    const held = this.heldMs + (this.heldSince === null ? 0 : now - this.heldSince);
    const sending = now - this.windowStartedAt - held;
    if (sending < windowMs) {
      this.rateTimer = setTimeout(this.checkRate, windowMs - sending);
      return;
    }
    if (this.windowBytes < (bytesPerSecond * windowMs) / 1000) {
      // Nobody could read an answer on a socket that no longer takes writes.
      if (!this.req.socket.writable) this.req.socket.destroy();
      return this.stop(new BodyTooSlowError(this.limits.minRate));
    }
    this.windowStartedAt = now;
    this.windowBytes = 0;
    this.heldMs = 0;
    if (this.heldSince !== null) this.heldSince = now;
    this.rateTimer = setTimeout(this.checkRate, windowMs);
  };

  private readonly onEnd = () => {
    this.sink?.end();
    this.settle();
  };

  private readonly onClose = () => {
    if (!this.req.readableEnded) this.stop(new Error('The request closed before its end.'));
  };

  private readonly stop = (err: Error) => {
    if (this.settled) return;
    this.req.off('data', this.onData);
    this.req.pause();
    this.settle(err);
  };

  private settle(err?: Error): void {
    if (this.settled) return;
    this.settled = true;
    clearTimeout(this.rateTimer);
    if (err) this.reject(err);
    else this.resolve();
  }
}

/** How much of an unread body is read and dropped before an early answer, and for how long at most. */
const DRAIN_MAX_BYTES = 64 * 1024;
const DRAIN_MAX_MS = 1_000;

/**
 * Reads and drops the rest of `req`'s body when it is small and comes at once; true when it ended, false when it
 * is larger than DRAIN_MAX_BYTES, slower than DRAIN_MAX_MS, or broke off (then it is left paused).
 */
export function drainSmallBody(req: IncomingMessage): Promise<boolean> {
  if (Number(req.headers['content-length']) > DRAIN_MAX_BYTES) return Promise.resolve(false);
  return new Promise((resolve) => {
    let received = 0;
    const done = (ended: boolean) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('close', onClose);
      if (!ended) req.pause();
      resolve(ended);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > DRAIN_MAX_BYTES) done(false);
    };
    const onEnd = () => done(true);
    const onClose = () => done(req.complete);
    const timer = setTimeout(() => done(false), DRAIN_MAX_MS);
    req.on('data', onData).once('end', onEnd).once('close', onClose);
    req.resume();
  });
}
