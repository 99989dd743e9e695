// A request body read within a cap on its size, as nginx's client_max_body_size: past the cap nothing more
// is read, and the answer closes the connection rather than read on to the next request.
import type { IncomingMessage } from 'node:http';
import type { Writable } from 'node:stream';

export class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
  constructor(readonly maxBytes: number) {
    super(`The request body is larger than ${maxBytes} bytes.`);
  }
}

export interface BodyLimits {
  maxBytes: number;
}

/**
 * Feeds the body of `req` into `sink`, and ends `sink` with it. `done` resolves once the body was read to its
 * end, and rejects when reading stopped before: past the cap, or the client went away.
 */
export class BodyReader {
  readonly done: Promise<void>;
  private received = 0;
  private sink: Writable | null;
  private settled = false;
  private resolve!: () => void;
  private reject!: (err: Error) => void;

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
  }

  /** Feeds the sink no more: the rest of the body is read and dropped, within the same limits. */
  discard(): void {
    if (!this.sink) return;
    this.sink.off('drain', this.onDrain);
    this.sink = null;
    if (!this.settled) this.req.resume();
  }

  private readonly onData = (chunk: Buffer) => {
    this.received += chunk.length;
    if (this.received > this.limits.maxBytes) return this.stop(new BodyTooLargeError(this.limits.maxBytes));
    if (this.sink && !this.sink.write(chunk)) {
      this.req.pause();
      this.sink.once('drain', this.onDrain);
    }
  };

  private readonly onDrain = () => {
    if (!this.settled) this.req.resume();
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
    if (err) this.reject(err);
    else this.resolve();
  }
}
