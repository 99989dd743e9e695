// Kind `archive`: what an archive holds, read from its directory or headers; nothing is ever extracted.
// A zip's central directory (yauzl, lazily, entry by entry) and a tar's headers give every field; a gzip
// stream is inflated into nothing to measure and check it (up to a cap); other formats give their name.
import { pipeline, type Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import yauzl from 'yauzl';
import { ARCHIVE_FORMATS, LISTED_NAMES, type ArchiveResult } from '../../core/results/archive.js';
import type { CommonResult } from '../../core/results/index.js';
import type { BlobSource } from '../../core/storage/index.js';
import { isReadFailure, withBlob } from './blobSource.js';
import { analyzingProcessor, readBytes, WindowedFile } from './common.js';
import { ProcessingError, type Analyzed, type AnalysisInput } from './types.js';

type ArchiveFields = Omit<ArchiveResult, keyof CommonResult>;

/** Above this ratio of declared sizes, an archive is reported as bomb-like. */
const BOMB_RATIO = 100;
/** From this many entries on, an archive is reported as one that would flood a disk when extracted. */
const MANY_ENTRIES = 10_000;

export async function analyzeArchive({ source, contentType, size }: AnalysisInput): Promise<Analyzed<ArchiveFields>> {
  const format = ARCHIVE_FORMATS[contentType] ?? contentType.replace(/^application\/(x-)?/, '');
  const fields =
    format === 'zip'
      ? await readZip(source, size)
      : format === 'tar'
        ? await readTar(source, size)
        : format === 'gzip'
          ? await readGzip(source, size)
          : unlisted(format);
  return { fields, warnings: warningsFor(fields) };
}

function warningsFor(fields: ArchiveFields): string[] {
  const warnings: string[] = [];
  if (fields.ratio !== null && fields.ratio > BOMB_RATIO) {
    warnings.push(
      `The archive declares ${fields.uncompressed_bytes} bytes uncompressed from ${fields.compressed_bytes} compressed ` +
        `(${Math.round(fields.ratio)}:1), like a decompression bomb; it was not extracted.`,
    );
  }
  if (fields.entries !== null && fields.entries >= MANY_ENTRIES)
    warnings.push(`The archive has ${fields.entries} entries; extracting it would create as many files.`);
  if (fields.encrypted_entries) warnings.push(`${fields.encrypted_entries} entries are encrypted and need a password.`);
  return warnings;
}

const unlisted = (format: string): ArchiveFields => ({
  format,
  entries: null,
  compressed_bytes: null,
  uncompressed_bytes: null,
  ratio: null,
  names: [],
  encrypted_entries: null,
});

const ratioOf = (uncompressed: number, compressed: number): number | null =>
  compressed > 0 ? Math.round((uncompressed / compressed) * 100) / 100 : null;

function readZip(source: BlobSource, size: number): Promise<ArchiveFields> {
  return withBlob(source, async (reader) => {
    // Names are decoded here rather than by yauzl, which rejects unsafe ones ("../x"): listing them is harmless.
    const zip = await yauzl
      .fromRandomAccessReaderPromise(new WindowedReader(new WindowedFile(reader)), size, {
        lazyEntries: true,
        autoClose: false,
        decodeStrings: false,
        validateEntrySizes: false,
      })
      .catch((err: unknown) => {
        throw asCorrupt(err, 'zip');
      });
    const fields: ArchiveFields = {
      ...unlisted('zip'),
      entries: 0,
      compressed_bytes: 0,
      uncompressed_bytes: 0,
      encrypted_entries: 0,
    };
    await new Promise<void>((resolve, reject) => {
      zip.on('entry', (entry: yauzl.Entry) => {
        fields.entries!++;
        fields.compressed_bytes! += entry.compressedSize;
        fields.uncompressed_bytes! += entry.uncompressedSize;
        if (entry.isEncrypted()) fields.encrypted_entries!++;
        if (fields.names.length < LISTED_NAMES) {
          // Names of up to 64 KiB: the worker cuts them on a character with every string of the result (bounds.ts).
          fields.names.push(
            yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, entry.fileNameRaw, entry.extraFields, false),
          );
        }
        zip.readEntry();
      });
      zip.once('end', resolve);
      zip.once('error', (err: unknown) => reject(asCorrupt(err, 'zip')));
      zip.readEntry();
    });
    fields.ratio = ratioOf(fields.uncompressed_bytes!, fields.compressed_bytes!);
    return fields;
  });
}

/** The zip for yauzl through windows: its own reader made two system calls per directory record. */
export class WindowedReader extends yauzl.RandomAccessReader {
  constructor(private readonly windowed: WindowedFile) {
    super();
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null, bytesRead?: number) => void,
  ): void {
    this.windowed.bytesAt(position, length).then((bytes) => callback(null, bytes.copy(buffer, offset)), callback);
  }

  override _readStreamForRange(start: number, end: number): Readable {
    return this.windowed.reader.stream({ start, end: end - 1 });
  }

  /** The caller closes the blob. */
  override close(callback: (err: Error | null) => void): void {
    setImmediate(callback, null);
  }
}

const TAR_BLOCK = 512;

/** Walks the 512-byte headers, jumping over each entry's data. */
async function readTar(source: BlobSource, size: number): Promise<ArchiveFields> {
  const fields: ArchiveFields = { ...unlisted('tar'), entries: 0, uncompressed_bytes: 0 };
  await withBlob(source, async (reader) => {
    const windowed = new WindowedFile(reader);
    const bytesAt = async (position: number, length: number) => {
      const bytes = await windowed.bytesAt(position, length);
      if (bytes.length < length) throw new ProcessingError('corrupt_file', 'The archive is truncated.');
      return bytes;
    };
    let longName: string | null = null;
    for (let offset = 0; offset + TAR_BLOCK <= size;) {
      const header = await bytesAt(offset, TAR_BLOCK);
      if (header.every((byte) => byte === 0)) break;
      if (!tarChecksumMatches(header, offset))
        throw new ProcessingError('corrupt_file', `The tar header at byte ${offset} is damaged (checksum mismatch).`);
      // Never negative, so the walk always moves on by at least a header.
      const entrySize = tarNumber(header.subarray(124, 136), 'size', offset);
      const type = String.fromCharCode(header[156]!);
      const dataStart = offset + TAR_BLOCK;
      offset = dataStart + Math.ceil(entrySize / TAR_BLOCK) * TAR_BLOCK;
      if (offset > size)
        throw new ProcessingError(
          'corrupt_file',
          'The tar archive is truncated: an entry runs past the end of the file.',
        );
      if (type === 'L') {
        // A GNU long name: the next header's name is in this entry's data.
        longName = cString(await bytesAt(dataStart, Math.min(entrySize, 4096)));
        continue;
      }
      if (type === 'x' || type === 'g') continue;
      fields.entries!++;
      if (type === '0' || type === '\0' || type === '7') fields.uncompressed_bytes! += entrySize;
      const prefix =
        header.subarray(257, 263).toString('latin1') === 'ustar\0' ? cString(header.subarray(345, 500)) : '';
      const name = longName ?? (prefix ? `${prefix}/` : '') + cString(header.subarray(0, 100));
      longName = null;
      if (fields.names.length < LISTED_NAMES) fields.names.push(name);
    }
  });
  return fields;
}

const cString = (bytes: Buffer): string => {
  const end = bytes.indexOf(0);
  return bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
};

/**
 * A header's number: octal digits (space- or NUL-terminated), or base-256 when the high bit of the first
 * byte is set (GNU, for sizes of 8 GiB and more). Anything else (a sign, a letter, a value past 2^53)
 * fails the file: parseInt would take "-1000" or "12zz" and leave the walk stuck or off its blocks.
 */
function tarNumber(field: Buffer, what: string, offset: number): number {
  const damaged = (how: string) =>
    new ProcessingError('corrupt_file', `The tar header at byte ${offset} is damaged: its ${what} field ${how}.`);
  if (field[0]! & 0x80) {
    // A negative base-256 number (first byte 0xff) reads as far above 2^53 too.
    const value = field.subarray(1).reduce((value, byte) => value * 256 + byte, field[0]! & 0x7f);
    if (!Number.isSafeInteger(value)) throw damaged('is a base-256 number beyond 2^53, or negative');
    return value;
  }
  const digits = field.toString('latin1').split('\0')[0]!.trim();
  if (!/^[0-7]*$/.test(digits)) throw damaged(`"${digits}" is not an octal number`);
  return digits === '' ? 0 : parseInt(digits, 8);
}

function tarChecksumMatches(header: Buffer, offset: number): boolean {
  let sum = 0;
  for (let i = 0; i < TAR_BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : header[i]!;
  return sum === tarNumber(header.subarray(148, 156), 'checksum', offset);
}

/** Inflating a gzip stream to check it stops after this much output, so a bomb costs seconds, not minutes. */
const GZIP_CHECK_BYTES = 1024 ** 3;

/**
 * The original name from the header, and the size: inflated and counted (output discarded, never
 * stored) up to GZIP_CHECK_BYTES, which also finds a truncated or damaged stream; past that, the size
 * the trailer declares (modulo 4 GiB).
 */
async function readGzip(source: BlobSource, size: number): Promise<ArchiveFields> {
  const GZIP_MIN = 18;
  if (size < GZIP_MIN) throw new ProcessingError('corrupt_file', 'The gzip file is truncated.');
  const header = await readBytes(source, 1024);
  const trailer = await readBytes(source, 4, size - 4);
  const flags = header[3]!;
  let at = 10;
  if (flags & 0x04) at += 2 + header.readUInt16LE(at);
  const names = flags & 0x08 ? [cString(header.subarray(at))] : [];
  const inflated = await inflatedSize(source);
  const uncompressed = inflated ?? trailer.readUInt32LE(0);
  return {
    ...unlisted('gzip'),
    names,
    compressed_bytes: size,
    uncompressed_bytes: uncompressed,
    ratio: ratioOf(uncompressed, size),
  };
}

/** Bytes the gzip stream inflates to, or null past GZIP_CHECK_BYTES. */
function inflatedSize(source: BlobSource): Promise<number | null> {
  return withBlob(source, async (reader) => {
    let total = 0;
    const gunzip = createGunzip();
    try {
      // A read failure reaches the loop through the pipeline, which `pipe` would leave waiting.
      for await (const chunk of pipeline(reader.stream(), gunzip, () => undefined) as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > GZIP_CHECK_BYTES) return null;
      }
    } catch (err) {
      throw asCorrupt(err, 'gzip');
    } finally {
      gunzip.destroy();
    }
    return total;
  });
}

function asCorrupt(err: unknown, format: string): Error {
  if (isReadFailure(err)) return err as Error;
  return new ProcessingError(
    'corrupt_file',
    `The file is not a readable ${format} archive (${String((err as Error)?.message ?? err)}).`,
  );
}

export const archiveProcessor = analyzingProcessor(import.meta.url, analyzeArchive);
