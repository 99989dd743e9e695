// The malware scanner: what it says of a file's bytes, behind a small interface so the worker never speaks
// clamd's protocol itself (ARCHITECTURE.md, "Malware scanning").
import { Readable } from 'node:stream';

export { clamdScanner, type ClamdScannerOptions } from './clamd.js';

/** What the scanner said of the bytes. */
export type ScanVerdict =
  | { status: 'clean' }
  | { status: 'infected'; signature: string }
  /** Past the scanner's limits (clamd's StreamMaxLength, or a Heuristics.Limits.Exceeded.* alert): not known to be clean. */
  | { status: 'unscannable'; reason: string };

/** The scanner could not give a verdict (down, refused, reset, timed out, answered an error): retry later. Never a verdict on the file. */
export class ScannerUnavailableError extends Error {
  override name = 'ScannerUnavailableError';
}

/**
 * Bytes the scanner pulls into buffers of its own, which it reuses: `read` fills the start of `into` with the next
 * bytes, as many as it has to hand, and resolves with their length, 0 only at the end. A file read where it lies
 * needs no buffer of its own per read (their garbage was the largest cost of a scan). Rejects with its own error.
 */
export interface ByteSource {
  read(into: Uint8Array): Promise<number>;
}

export interface Scanner {
  /**
   * Sends `bytes` to the scanner, never holding them whole, and resolves with its verdict; rejects with
   * ScannerUnavailableError. A stream is consumed and destroyed, whatever the outcome; a ByteSource is its owner's.
   */
  scan(bytes: Readable | ByteSource): Promise<ScanVerdict>;
  /** The engine and its signatures' version, e.g. "ClamAV 1.4.6/27452/Mon Dec 7 08:24:01 2026" (clamd's VERSION); cached for a while. */
  engine(): Promise<string>;
  /** Resolves when the scanner answers PING; rejects with ScannerUnavailableError. */
  ping(): Promise<void>;
  close(): void;
}

/** A stream's bytes as a ByteSource, each chunk copied into the buffers it is given; its errors, and a close before its end (ERR_STREAM_PREMATURE_CLOSE), are the source's. */
export function byteSourceOf(stream: Readable): ByteSource {
  const chunks = stream[Symbol.asyncIterator]() as AsyncIterator<Uint8Array | string>;
  let rest: Uint8Array = new Uint8Array(0);
  return {
    async read(into) {
      while (rest.length === 0) {
        const next = await chunks.next();
        if (next.done) return 0;
        rest = typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      }
      const length = Math.min(rest.length, into.length);
      into.set(rest.subarray(0, length));
      rest = rest.subarray(length);
      return length;
    },
  };
}
