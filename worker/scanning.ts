// The first step of processing when SCAN_CLAMD is set: the stored bytes, whatever way they came in, streamed to the
// malware scanner. Its verdict is the File's `scan`; what becomes of the file is the worker's to decide (worker.ts).
import { createHash } from 'node:crypto';
import type { FileError, FileRow, Scan } from '../core/fileRecord.js';
import { byteSourceOf, ScannerUnavailableError, type ByteSource, type Scanner } from '../core/scanner/index.js';
import type { BlobStore } from '../core/storage/index.js';
import type { Metrics } from '../core/telemetry/metrics.js';
import { openBlob, openStored } from './processors/blobSource.js';

export interface Scanning {
  scanner: Scanner;
  /** SCAN_UNSCANNABLE: a file past the scanner's limits fails (`fail`) or is processed and served (`allow`). */
  unscannable: 'fail' | 'allow';
}

/**
 * The scanner's verdict on the file's stored bytes. Rejects with ScannerUnavailableError when the scanner gives none
 * (the file waits; NoVerdictWhileUp when the scanner answers PING all the same), blob_missing when the bytes are
 * gone, or the store's own error. `strikes` is how many tries in a row before this one ended in NoVerdictWhileUp.
 */
export async function scanStoredFile(
  file: FileRow,
  scanning: Scanning,
  storage: BlobStore,
  metrics: Metrics,
  strikes: number,
): Promise<ScanOutcome> {
  try {
    return await scanOnce(file, scanning, storage, metrics);
  } catch (err) {
    if (!(err instanceof ScannerUnavailableError)) throw err;
    const answers = await scanning.scanner.ping().then(
      () => true,
      () => false,
    );
    // Away: the file waits for it, however long.
    if (!answers) throw err;
    // It answers PING, yet gave this file no verdict time after time (its scan outlasts SCAN_TIMEOUT_MS, or clamd
    // drops it): the file is what it cannot read, and waiting longer would wait for ever.
    if (strikes + 1 >= SCAN_TRIES_WHILE_UP) {
      metrics.scans.inc({ verdict: 'unscannable' });
      const scan: Scan = {
        status: 'unscannable',
        signature: `No verdict in ${strikes + 1} tries while the scanner answered: ${err.message}`,
        engine: await scanning.scanner.engine(),
        scanned_at: new Date().toISOString(),
      };
      return { scan, intact: false };
    }
    throw new NoVerdictWhileUp(err.message, { cause: err });
  }
}

/** A scan without a verdict while the scanner answers PING: one strike of SCAN_TRIES_WHILE_UP. */
export class NoVerdictWhileUp extends ScannerUnavailableError {
  override name = 'NoVerdictWhileUp';
}

/** The verdict, and whether the bytes scanned were the whole file and match its sha256 (the processors need not check again). */
export interface ScanOutcome {
  scan: Scan;
  intact: boolean;
}

async function scanOnce(
  file: FileRow,
  { scanner }: Scanning,
  storage: BlobStore,
  metrics: Metrics,
): Promise<ScanOutcome> {
  const started = process.hrtime.bigint();
  const bytes = await openForScan(storage, file.id);
  // The bytes on their way to the scanner are hashed too: this one read checks them, where the processors would read
  // them again for it. A store's error reaches the scanner as its source's own.
  const hash = createHash('sha256');
  let length = 0;
  let ended = false;
  const hashed: ByteSource = {
    async read(into) {
      const read = await bytes.read(into);
      hash.update(into.subarray(0, read));
      length += read;
      ended = read === 0;
      return read;
    },
  };
  try {
    const verdict = await scanner.scan(hashed);
    // Read to its end (not cut short by clamd's size limit), and the bytes the upload recorded.
    const intact = ended && length === file.size && hash.digest('hex') === file.sha256;
    const engine = await scanner.engine();
    metrics.scannerUp.set(1);
    metrics.scans.inc({ verdict: verdict.status });
    metrics.scanBytes.inc(file.size);
    metrics.scanDuration.observe(Number(process.hrtime.bigint() - started) / 1e9);
    const scan: Scan = {
      status: verdict.status,
      signature:
        verdict.status === 'infected' ? verdict.signature : verdict.status === 'unscannable' ? verdict.reason : null,
      engine,
      scanned_at: new Date().toISOString(),
    };
    return { scan, intact };
  } catch (err) {
    if (err instanceof ScannerUnavailableError) {
      metrics.scannerUp.set(0);
      metrics.scans.inc({ verdict: 'error' });
    }
    throw err;
  } finally {
    await bytes.close();
  }
}

/**
 * The stored bytes in order: a file on this machine read straight into the scanner's buffers, an object streamed
 * from its store; blob_missing when there are none.
 */
async function openForScan(storage: BlobStore, id: string): Promise<ByteSource & { close(): Promise<void> }> {
  const where = await storage.source(id, SOURCE_VALID_MS);
  if ('path' in where) {
    const file = await openBlob(where);
    let position = 0;
    return {
      async read(into) {
        const { bytesRead } = await file.read(into, 0, into.length, position);
        position += bytesRead;
        return bytesRead;
      },
      close: () => file.close(),
    };
  }
  const stream = await openStored(storage, id);
  return { ...byteSourceOf(stream), close: () => Promise.resolve(void stream.destroy()) };
}

/** The failure of a file the scanner found malware in: the message names what was found. */
export const malwareDetected = (scan: Scan): FileError => ({
  code: 'malware_detected',
  message: `The scanner found malware in the file (${scan.signature ?? 'unnamed'}, ${scan.engine}); its bytes are never served. Reprocess it to scan again, with newer signatures.`,
});

/** The failure of a file past the scanner's limits, with SCAN_UNSCANNABLE=fail. */
export const unscannable = (scan: Scan): FileError => ({
  code: 'unscannable',
  message: `The scanner could not read the whole file (${scan.signature ?? 'past its limits'}), so it is not known to be clean; its bytes are not served.`,
});

/** The validity of the place the bytes are read from (a path, or a presigned URL that is not used for the stream). */
const SOURCE_VALID_MS = 60_000;

/** Tries in a row without a verdict while the scanner answers PING, after which a file is taken as one it cannot read. */
export const SCAN_TRIES_WHILE_UP = 3;
