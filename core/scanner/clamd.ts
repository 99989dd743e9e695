// Our own small client of clamd (ClamAV's daemon) over TCP or a unix socket: INSTREAM with backpressure, PING and
// VERSION. Why not an npm client: ARCHITECTURE.md, "Malware scanning". The protocol: `man clamd`.
import net from 'node:net';
import path from 'node:path';
import { Readable } from 'node:stream';
import { byteSourceOf, ScannerUnavailableError, type ByteSource, type Scanner, type ScanVerdict } from './index.js';

export interface ClamdScannerOptions {
  /**
   * The longest clamd may keep us waiting without progress: to take the next bytes (connecting included), or to
   * answer once it has them all (its whole scan happens then). Inactivity, not a total: a big file from a slow
   * store may take longer, and time spent waiting for the source's next bytes is not counted.
   */
  timeoutMs: number;
  /** How long engine() keeps clamd's VERSION answer; a minute unless a test shortens it. */
  engineCacheMs?: number;
}

/**
 * The client's buffers, each the most bytes of one INSTREAM chunk: a file is read into them, a MiB at a time (a
 * sixteenth of the reads and writes of 64 KiB), and each goes back to the pool once the socket has written it.
 */
const BUFFER_BYTES = 1024 * 1024;
/** Buffers the pool keeps between scans: two for each of that many scans at once (one read, one on its way). */
const IDLE_BUFFERS = 16;
/** clamd's answers are one short line: anything longer is not an answer from clamd. */
const ANSWER_MAX_BYTES = 1024;
const ENGINE_CACHE_MS = 60_000;
const INSTREAM = Buffer.from('zINSTREAM\0');
const LIMITS_ALERT = 'Heuristics.Limits.Exceeded';
const SIZE_LIMIT_ANSWER = 'INSTREAM size limit exceeded. ERROR';
const MAX_CHUNK_LENGTH = 0xffff_ffff;

/** How an INSTREAM ended: clamd's answer, or the connection lost after `declared` bytes were sent (or on their way). */
type Exchange = { answer: string } | { lost: ScannerUnavailableError; declared: number };

type Endpoint = { host: string; port: number } | { path: string };

/**
 * A scanner speaking to clamd at `address` (`tcp://host:port` or a unix socket's absolute path); one connection a
 * call. `scan` consumes its stream and destroys it, whatever the outcome.
 */
export function clamdScanner(address: string, options: ClamdScannerOptions): Scanner {
  const endpoint = parseAddress(address);
  const { timeoutMs, engineCacheMs = ENGINE_CACHE_MS } = options;
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`timeoutMs must be positive, not ${timeoutMs}`);
  const open = new Set<net.Socket>();
  const buffers = bufferPool(BUFFER_BYTES, IDLE_BUFFERS);
  let closed = false;
  let cachedEngine: { version: Promise<string>; until: number } | undefined;

  const connect = (): net.Socket => {
    if (closed) throw new ScannerUnavailableError(`The scanner for clamd at ${address} was closed.`);
    const socket = net.createConnection(endpoint);
    open.add(socket);
    socket.once('close', () => open.delete(socket));
    return socket;
  };

  /**
   * Whether clamd refuses an INSTREAM of `declared` bytes: it checks each chunk's length, as it reads it, against
   * what is left of StreamMaxLength, so one length and no bytes are enough to know (its answer, or a close).
   */
  const overStreamMaxLength = async (declared: number): Promise<boolean> => {
    const socket = connect();
    try {
      const answer = readAnswer(socket, address);
      socket.end(Buffer.concat([INSTREAM, chunkLength(Math.min(declared, MAX_CHUNK_LENGTH))]));
      return (await withinTimeout(answer, timeoutMs, 'clamd did not answer')) === SIZE_LIMIT_ANSWER;
    } catch {
      return false;
    } finally {
      socket.destroy();
    }
  };

  const command = async (name: 'PING' | 'VERSION'): Promise<string> => {
    const socket = connect();
    try {
      const answer = readAnswer(socket, address);
      socket.write(`z${name}\0`);
      return await withinTimeout(answer, timeoutMs, `clamd at ${address} did not answer ${name}`);
    } finally {
      socket.destroy();
    }
  };

  return {
    async scan(bytes) {
      let socket: net.Socket | undefined;
      try {
        socket = connect();
        const source = bytes instanceof Readable ? byteSourceOf(bytes) : bytes;
        const exchange = await instream(socket, source, buffers, address, timeoutMs);
        if ('answer' in exchange) return verdictOf(exchange.answer);
        // the reset may be clamd's size limit, its answer lost with the connection: ask clamd about the size alone
        if (exchange.declared > 0 && (await overStreamMaxLength(exchange.declared)))
          return verdictOf(SIZE_LIMIT_ANSWER);
        throw exchange.lost;
      } finally {
        socket?.destroy();
        if (bytes instanceof Readable) bytes.destroy();
      }
    },
    engine() {
      const now = Date.now();
      if (!cachedEngine || cachedEngine.until <= now) {
        const version = command('VERSION').then((answer) => {
          if (!answer.startsWith('ClamAV ')) throw unexpected(address, 'VERSION', answer);
          return answer;
        });
        const entry = { version, until: now + engineCacheMs };
        cachedEngine = entry;
        version.catch(() => {
          // a failure is not kept: the next call asks again
          if (cachedEngine === entry) cachedEngine = undefined;
        });
      }
      return cachedEngine.version;
    },
    async ping() {
      const answer = await command('PING');
      if (answer !== 'PONG') throw unexpected(address, 'PING', answer);
    },
    close() {
      closed = true;
      cachedEngine = undefined;
      for (const socket of open) socket.destroy(new ScannerUnavailableError(`The scanner was closed.`));
    },
  };
}

/**
 * Sends `source` to clamd as INSTREAM chunks, reading it no faster than clamd takes them, and resolves with clamd's
 * answer, or with the connection lost. An early answer (clamd's size limit) stops the reading. Rejects with the
 * source's own error when it fails, and with ScannerUnavailableError on a timeout.
 */
async function instream(
  socket: net.Socket,
  source: ByteSource,
  buffers: BufferPool,
  address: string,
  timeoutMs: number,
): Promise<Exchange> {
  let declared = 0;
  let answered = false;
  const exchange = readAnswer(socket, address).then(
    (answer): Exchange => ({ answer }),
    (lost: ScannerUnavailableError): Exchange => ({ lost, declared }),
  );
  void exchange.then(() => (answered = true));
  const send = async (): Promise<void> => {
    socket.write(INSTREAM);
    while (!answered) {
      const buffer = buffers.take();
      const length = await source.read(buffer).catch((err: unknown) => {
        buffers.give(buffer);
        throw err;
      });
      if (answered || length === 0) {
        buffers.give(buffer);
        if (!answered) socket.write(chunkLength(0));
        return;
      }
      // the chunk's length and bytes leave in one system call (writev); the buffer is the pool's once written
      socket.cork();
      socket.write(chunkLength(length));
      const taken = socket.write(buffer.subarray(0, length), () => buffers.give(buffer));
      socket.uncork();
      declared += length;
      if (!taken) {
        // a lost connection ends the wait with the exchange, never with an error of its own
        const drained = Promise.race([new Promise((resolve) => socket.once('drain', resolve)), exchange]);
        await withinTimeout(drained, timeoutMs, `clamd at ${address} did not take more bytes`);
      }
    }
  };
  // the time spent waiting for the source is not clamd's: only a wait on clamd itself is timed
  const sent = send().then(() => withinTimeout(exchange, timeoutMs, `clamd at ${address} did not answer`));
  return Promise.race([exchange, sent]);
}

interface BufferPool {
  take(): Buffer;
  give(buffer: Buffer): void;
}

/** Buffers of `size` bytes to reuse, keeping at most `idle` of them between uses. */
function bufferPool(size: number, idle: number): BufferPool {
  const free: Buffer[] = [];
  return {
    take: () => free.pop() ?? Buffer.allocUnsafeSlow(size),
    give: (buffer) => {
      if (free.length < idle) free.push(buffer);
    },
  };
}

/**
 * clamd's answer on `socket`: the text up to its NUL. Rejects with ScannerUnavailableError when the connection
 * fails or ends first. Its listeners stay until the socket is destroyed, so a write failing after the answer (clamd
 * closes at its size limit while bytes are still on their way) is absorbed rather than thrown.
 */
function readAnswer(socket: net.Socket, address: string): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const parts: Buffer[] = [];
    let length = 0;
    socket.on('data', (data: Buffer) => {
      const end = data.indexOf(0);
      parts.push(end === -1 ? data : data.subarray(0, end));
      length += end === -1 ? data.length : end;
      if (length > ANSWER_MAX_BYTES) {
        reject(new ScannerUnavailableError(`clamd at ${address} answered more than ${ANSWER_MAX_BYTES} bytes.`));
        // not clamd: read no more of it (a scan keeps its socket while it asks about the size on another one)
        socket.destroy();
      } else if (end !== -1) resolve(Buffer.concat(parts).toString('latin1'));
    });
    socket.on('error', (err: Error) =>
      reject(
        // close() destroys the socket with its own error
        err instanceof ScannerUnavailableError
          ? err
          : new ScannerUnavailableError(`clamd at ${address}: ${err.message}`, { cause: err }),
      ),
    );
    socket.on('close', () =>
      reject(
        new ScannerUnavailableError(
          length === 0
            ? `clamd at ${address} closed the connection without an answer.`
            : `clamd at ${address} closed the connection in the middle of its answer.`,
        ),
      ),
    );
  });
}

/** The verdict in clamd's answer to INSTREAM; an answer that is not one is an error of the scanner's. */
function verdictOf(answer: string): ScanVerdict {
  if (answer === 'stream: OK') return { status: 'clean' };
  const found = /^stream: (\S+) FOUND$/.exec(answer);
  if (found) {
    const signature = found[1]!;
    // clamd's alert (AlertExceedsMax) for a file past MaxFileSize, MaxScanSize, MaxRecursion...: not scanned whole
    return signature === LIMITS_ALERT || signature.startsWith(`${LIMITS_ALERT}.`)
      ? { status: 'unscannable', reason: signature }
      : { status: 'infected', signature };
  }
  if (answer === SIZE_LIMIT_ANSWER) return { status: 'unscannable', reason: "larger than clamd's StreamMaxLength" };
  throw new ScannerUnavailableError(`clamd answered "${printable(answer)}" to INSTREAM.`);
}

function chunkLength(bytes: number): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes);
  return length;
}

function unexpected(address: string, command: string, answer: string): ScannerUnavailableError {
  return new ScannerUnavailableError(`clamd at ${address} answered "${printable(answer)}" to ${command}.`);
}

const printable = (text: string) => text.replace(/[^\x20-\x7e]/g, '?');

async function withinTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new ScannerUnavailableError(`${what} within ${ms} ms.`)), ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

function parseAddress(address: string): Endpoint {
  const wrong = new Error(`A clamd address is tcp://host:port or a unix socket's absolute path, not "${address}".`);
  if (path.isAbsolute(address)) return { path: address };
  if (!address.startsWith('tcp://')) throw wrong;
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw wrong;
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port);
  const bare = (url.pathname === '' || url.pathname === '/') && !url.search && !url.hash && !url.username;
  if (!host || !bare || !Number.isInteger(port) || port < 1 || port > 65_535) throw wrong;
  return { host, port };
}
