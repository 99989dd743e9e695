// The malware scanner: what it says of a file's bytes, behind a small interface so the worker never speaks
// clamd's protocol itself (ARCHITECTURE.md, "Malware scanning").
import type { Readable } from 'node:stream';

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

export interface Scanner {
  /** Streams `bytes` to the scanner, never holding them whole, and resolves with its verdict; rejects with ScannerUnavailableError. */
  scan(bytes: Readable): Promise<ScanVerdict>;
  /** The engine and its signatures' version, e.g. "ClamAV 1.4.6/27452/Mon Dec 7 08:24:01 2026" (clamd's VERSION); cached for a while. */
  engine(): Promise<string>;
  /** Resolves when the scanner answers PING; rejects with ScannerUnavailableError. */
  ping(): Promise<void>;
  close(): void;
}
