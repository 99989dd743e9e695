// Kind `archive`: what an archive holds, read from its directory or headers; nothing is ever extracted.
// A zip's central directory (yauzl, lazily, entry by entry) and a tar's headers give every field; a gzip or zstd
// stream is decompressed into nothing to measure and check it (up to a cap), and the headers of a tar inside it are
// walked as they pass (.tar.gz, .tgz, .tar.zst); other formats give their name.
import { pipeline, type Readable } from 'node:stream';
import { createGunzip, createZstdDecompress, type Gunzip, type ZstdDecompress } from 'node:zlib';
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
  /** What the reading found to say beyond the fields. */
  const notes: string[] = [];
  const fields =
    format === 'zip'
      ? await readZip(source, size)
      : format === 'tar'
        ? await readTar(source, size)
        : format === 'gzip' || format === 'zstd'
          ? await readCompressed(source, size, format, notes)
          : unlisted(format);
  if (format === 'bzip2' || format === 'xz') {
    notes.push(
      `This service does not decompress ${format}: the entries of a tar archive inside (.tar.${format === 'xz' ? 'xz' : 'bz2'}) are not listed.`,
    );
  }
  return { fields, warnings: [...warningsFor(fields), ...notes] };
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
  const tally = new TarTally();
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
      const entry = tarEntry(header, offset);
      const dataStart = offset + TAR_BLOCK;
      offset = dataStart + Math.ceil(entry.size / TAR_BLOCK) * TAR_BLOCK;
      if (offset > size)
        throw new ProcessingError(
          'corrupt_file',
          'The tar archive is truncated: an entry runs past the end of the file.',
        );
      if (entry.type === 'L') {
        // A GNU long name: the next header's name is in this entry's data.
        longName = cString(await bytesAt(dataStart, Math.min(entry.size, 4096)));
        continue;
      }
      tally.add(entry, longName);
      longName = null;
    }
  });
  return { ...unlisted('tar'), entries: tally.entries, uncompressed_bytes: tally.bytes, names: tally.names };
}

interface TarEntry {
  /** Bytes of data after the header; never negative, so a walk always moves on by at least a header. */
  size: number;
  type: string;
  /** The name in the header, its ustar prefix joined. */
  name: string;
}

/** What the tar header at `offset` says; a damaged one fails the file. */
function tarEntry(header: Buffer, offset: number): TarEntry {
  if (!tarChecksumMatches(header, offset))
    throw new ProcessingError('corrupt_file', `The tar header at byte ${offset} is damaged (checksum mismatch).`);
  const prefix = header.subarray(257, 263).toString('latin1') === 'ustar\0' ? cString(header.subarray(345, 500)) : '';
  return {
    size: tarNumber(header.subarray(124, 136), 'size', offset),
    type: String.fromCharCode(header[156]!),
    name: (prefix ? `${prefix}/` : '') + cString(header.subarray(0, 100)),
  };
}

/** A tar's entries, counted as a walk meets them: pax headers are not entries, regular files add their size. */
class TarTally {
  entries = 0;
  bytes = 0;
  readonly names: string[] = [];

  add(entry: TarEntry, longName: string | null): void {
    if (entry.type === 'x' || entry.type === 'g') return;
    this.entries++;
    if (entry.type === '0' || entry.type === '\0' || entry.type === '7') this.bytes += entry.size;
    if (this.names.length < LISTED_NAMES) this.names.push(longName ?? entry.name);
  }
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

/** Decompressing a gzip or zstd stream to check it stops after this much output, so a bomb costs seconds, not minutes. */
const DECOMPRESSION_BUDGET_BYTES = 1024 ** 3;

/**
 * A gzip or zstd stream, decompressed (output counted, never stored) up to DECOMPRESSION_BUDGET_BYTES, which also finds
 * a truncated or damaged stream; a tar inside is listed from its headers as they pass. Past the budget, the size is
 * the one gzip's trailer declares (modulo 4 GiB), and a tar's listing stops there with a note.
 */
async function readCompressed(
  source: BlobSource,
  size: number,
  format: 'gzip' | 'zstd',
  notes: string[],
): Promise<ArchiveFields> {
  const names: string[] = [];
  let declared: number | null = null;
  if (format === 'gzip') {
    const GZIP_MIN = 18;
    if (size < GZIP_MIN) throw new ProcessingError('corrupt_file', 'The gzip file is truncated.');
    const header = await readBytes(source, 1024);
    const flags = header[3]!;
    let at = 10;
    if (flags & 0x04) at += 2 + header.readUInt16LE(at);
    if (flags & 0x08) names.push(cString(header.subarray(at)));
    declared = (await readBytes(source, 4, size - 4)).readUInt32LE(0);
  }
  const tar = new TarListing();
  const decompressed = await decompressedSize(source, format, tar);
  const listing = tar.result();
  if (listing) {
    if (decompressed === null) {
      notes.push(
        `The tar archive inside decompresses to more than ${DECOMPRESSION_BUDGET_BYTES} bytes, the most this service ` +
          `decompresses (like a decompression bomb); the ${listing.entries} entries before that were listed, not the rest.`,
      );
    }
    const complete = decompressed !== null;
    return {
      ...unlisted(format === 'gzip' ? 'tar.gz' : 'tar.zst'),
      names: listing.names,
      entries: complete ? listing.entries : null,
      compressed_bytes: size,
      uncompressed_bytes: complete ? listing.bytes : null,
      ratio: complete ? ratioOf(listing.bytes, size) : null,
    };
  }
  const uncompressed = decompressed ?? declared;
  return {
    ...unlisted(format),
    names,
    compressed_bytes: size,
    uncompressed_bytes: uncompressed,
    ratio: uncompressed === null ? null : ratioOf(uncompressed, size),
  };
}

/** Bytes the stream decompresses to, or null past DECOMPRESSION_BUDGET_BYTES; every chunk is also given to `tar`. */
function decompressedSize(source: BlobSource, format: 'gzip' | 'zstd', tar: TarListing): Promise<number | null> {
  return withBlob(source, async (reader) => {
    let total = 0;
    const decompressor: Gunzip | ZstdDecompress = format === 'gzip' ? createGunzip() : createZstdDecompress();
    try {
      // A read failure reaches the loop through the pipeline, which `pipe` would leave waiting.
      for await (const chunk of pipeline(reader.stream(), decompressor, () => undefined) as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > DECOMPRESSION_BUDGET_BYTES) return null;
        tar.feed(chunk);
      }
    } catch (err) {
      throw asCorrupt(err, format);
    } finally {
      decompressor.destroy();
    }
    return total;
  });
}

/**
 * A tar's headers, walked as its bytes stream past (they come out of a decompressor, so nothing can be skipped
 * without being read): names, entries and declared sizes. It gives up at once, and for good, when the first block
 * is no tar header; a damaged header further on fails the file, as in a plain tar.
 */
class TarListing {
  private header = Buffer.alloc(TAR_BLOCK);
  private headerBytes = 0;
  /** Bytes of the current entry's data (and padding) still to pass. */
  private skip = 0;
  /** Bytes of a GNU long name still to gather, and what was gathered. */
  private longNameLeft = 0;
  private longNameParts: Buffer[] = [];
  private longName: string | null = null;
  private offset = 0;
  private state: 'unknown' | 'tar' | 'not_tar' | 'ended' = 'unknown';
  private readonly tally = new TarTally();

  feed(chunk: Buffer): void {
    for (let at = 0; at < chunk.length && (this.state === 'unknown' || this.state === 'tar');) {
      if (this.skip > 0) {
        const passed = Math.min(this.skip, chunk.length - at);
        if (this.longNameLeft > 0) {
          const kept = Math.min(passed, this.longNameLeft);
          this.longNameParts.push(Buffer.from(chunk.subarray(at, at + kept)));
          this.longNameLeft -= kept;
          if (this.longNameLeft === 0) this.longName = cString(Buffer.concat(this.longNameParts));
        }
        this.skip -= passed;
        this.offset += passed;
        at += passed;
        continue;
      }
      const taken = Math.min(TAR_BLOCK - this.headerBytes, chunk.length - at);
      chunk.copy(this.header, this.headerBytes, at, at + taken);
      this.headerBytes += taken;
      at += taken;
      if (this.headerBytes === TAR_BLOCK) {
        this.headerBytes = 0;
        this.onHeader();
      }
    }
  }

  /** The listing, or null when the stream holds no tar. */
  result(): TarTally | null {
    if (this.state === 'unknown' || this.state === 'not_tar') return null;
    return this.tally;
  }

  private onHeader(): void {
    const header = this.header;
    const offset = this.offset;
    this.offset += TAR_BLOCK;
    if (header.every((byte) => byte === 0)) {
      this.state = this.state === 'tar' ? 'ended' : 'not_tar';
      return;
    }
    let entry: TarEntry;
    try {
      entry = tarEntry(header, offset);
    } catch (err) {
      // The first header decides: a stream whose first block does not read as one holds no tar.
      if (this.state === 'unknown') return void (this.state = 'not_tar');
      throw err;
    }
    this.state = 'tar';
    this.skip = Math.ceil(entry.size / TAR_BLOCK) * TAR_BLOCK;
    if (entry.type === 'L') {
      this.longNameLeft = Math.min(entry.size, 4096);
      this.longNameParts = [];
      return;
    }
    this.tally.add(entry, this.longName);
    this.longName = null;
  }
}

function asCorrupt(err: unknown, format: string): Error {
  if (isReadFailure(err)) return err as Error;
  return new ProcessingError(
    'corrupt_file',
    `The file is not a readable ${format} archive (${String((err as Error)?.message ?? err)}).`,
  );
}

export const archiveProcessor = analyzingProcessor(import.meta.url, analyzeArchive);
