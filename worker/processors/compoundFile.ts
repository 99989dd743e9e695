// A reader of OLE2 compound files (MS-CFB), the container of legacy .doc, .xls and .ppt, and of their property
// sets (MS-OLEPS), just enough to list the directory and read a small stream. Every sector number comes from the
// file: each is checked against the file's size, and every chain is walked with loop detection and a cap.
import type { BlobReader } from './blobSource.js';
import { WindowedFile } from './common.js';
import { ProcessingError } from './types.js';

const HEADER_BYTES = 512;
const SIGNATURE = Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]);
const END_OF_CHAIN = 0xfffffffe;
const FREE_SECT = 0xffffffff;
const DIRECTORY_ENTRY_BYTES = 128;
const MINI_SECTOR_BYTES = 64;
/** The header lists the first 109 FAT sectors; the DIFAT chain lists the rest. */
const HEADER_DIFAT_ENTRIES = 109;
/** An Office document's directory has tens of entries; a megabyte of them is far beyond any honest one. */
const MAX_DIRECTORY_BYTES = 1024 * 1024;
/** The mini FAT of a document whose small streams total a few megabytes. */
const MAX_MINI_FAT_BYTES = 1024 * 1024;
/** As much mini stream as that mini FAT maps: the root entry's size, from the file, may claim gigabytes. */
const MAX_MINI_STREAM_BYTES = (MAX_MINI_FAT_BYTES / 4) * MINI_SECTOR_BYTES;

export interface DirectoryEntry {
  name: string;
  /** 1 storage, 2 stream, 5 root. */
  type: number;
  start: number;
  size: number;
}

const corrupt = (why: string) => new ProcessingError('corrupt_file', `The OLE2 compound file ${why}.`);

export class CompoundFile {
  private readonly file: WindowedFile;
  private readonly sectorSize: number;
  private readonly sectorCount: number;
  private fatSectors: number[] = [];
  private miniFat: Buffer | null = null;
  private miniStreamSectors: number[] | null = null;
  /** The directory's entries in the order it lists them (its red-black tree is not needed to find a name). */
  entries: DirectoryEntry[] = [];

  private constructor(
    reader: BlobReader,
    private readonly header: Buffer,
    size: number,
  ) {
    this.file = new WindowedFile(reader);
    this.sectorSize = 2 ** header.readUInt16LE(30);
    // The header takes the first sector, whatever its size.
    this.sectorCount = Math.ceil(size / this.sectorSize) - 1;
  }

  /** Reads the header, the FAT's location and the directory. */
  static async open(reader: BlobReader, size: number): Promise<CompoundFile> {
    const header = await new WindowedFile(reader).bytesAt(0, HEADER_BYTES);
    if (header.length < HEADER_BYTES) throw corrupt('is truncated: its header is incomplete');
    if (!header.subarray(0, 8).equals(SIGNATURE)) throw corrupt('has no OLE2 signature');
    const [sectorShift, miniSectorShift] = [header.readUInt16LE(30), header.readUInt16LE(32)];
    if ((sectorShift !== 9 && sectorShift !== 12) || miniSectorShift !== 6)
      throw corrupt(
        `declares sectors of 2^${sectorShift} bytes and mini sectors of 2^${miniSectorShift}, which no version of the format has`,
      );
    const compound = new CompoundFile(reader, header, size);
    compound.fatSectors = await compound.readDifat();
    compound.entries = await compound.readDirectory();
    return compound;
  }

  /** A stream's bytes, or too_complex when it is larger than `maxBytes`. */
  async read(entry: DirectoryEntry, maxBytes: number): Promise<Buffer> {
    if (entry.size > maxBytes)
      throw new ProcessingError(
        'too_complex',
        `The document's ${printable(entry.name)} stream is ${entry.size} bytes, more than the ${maxBytes} read.`,
      );
    // Streams below the header's cutoff (4096 bytes in every version) live in the mini stream.
    if (entry.size < this.header.readUInt32LE(56)) return this.readMini(entry);
    const sectors = await this.chain(entry.start, Math.ceil(entry.size / this.sectorSize));
    if (sectors.length * this.sectorSize < entry.size) throw corrupt(`ends its ${printable(entry.name)} stream early`);
    return (await this.sectors(sectors)).subarray(0, entry.size);
  }

  private async readDifat(): Promise<number[]> {
    const fatCount = this.header.readUInt32LE(44);
    if (fatCount > this.sectorCount) throw corrupt(`declares ${fatCount} FAT sectors in a file of ${this.sectorCount}`);
    const listed: number[] = [];
    for (let i = 0; i < HEADER_DIFAT_ENTRIES && listed.length < fatCount; i++)
      listed.push(this.header.readUInt32LE(76 + i * 4));
    const perDifatSector = this.sectorSize / 4 - 1;
    const visited = new Set<number>();
    for (let next = this.header.readUInt32LE(68); listed.length < fatCount;) {
      this.checkSector(next, visited, 'DIFAT');
      const difat = await this.sector(next);
      for (let i = 0; i < perDifatSector && listed.length < fatCount; i++) listed.push(difat.readUInt32LE(i * 4));
      next = difat.readUInt32LE(perDifatSector * 4);
    }
    return listed;
  }

  private async readDirectory(): Promise<DirectoryEntry[]> {
    const sectors = await this.chain(this.header.readUInt32LE(48), MAX_DIRECTORY_BYTES / this.sectorSize, 'directory');
    const entries: DirectoryEntry[] = [];
    for (const sector of sectors) {
      const bytes = await this.sector(sector);
      for (let at = 0; at + DIRECTORY_ENTRY_BYTES <= bytes.length; at += DIRECTORY_ENTRY_BYTES) {
        const type = bytes[at + 66]!;
        if (type === 0) continue;
        const nameBytes = Math.min(bytes.readUInt16LE(at + 64), 64);
        entries.push({
          name: bytes.toString('utf16le', at, at + Math.max(0, nameBytes - 2)),
          type,
          start: bytes.readUInt32LE(at + 116),
          // Version 3 files may leave garbage in the high half: no stream of ours comes near 4 GiB anyway.
          size: bytes.readUInt32LE(at + 120),
        });
      }
    }
    return entries;
  }

  /** A small stream, from 64-byte sectors of the root entry's mini stream. */
  private async readMini(entry: DirectoryEntry): Promise<Buffer> {
    const miniFat = await this.loadMiniFat();
    const root = this.entries.find((candidate) => candidate.type === 5);
    if (!root) throw corrupt('has no root entry');
    const rootSectors = Math.ceil(Math.min(root.size, MAX_MINI_STREAM_BYTES) / this.sectorSize);
    this.miniStreamSectors ??= await this.chain(root.start, rootSectors, 'mini stream');
    const parts: Buffer[] = [];
    const visited = new Set<number>();
    const miniSectors = Math.ceil(entry.size / MINI_SECTOR_BYTES);
    for (let mini = entry.start; parts.length < miniSectors; mini = miniFat.readUInt32LE(mini * 4)) {
      if (mini === END_OF_CHAIN) throw corrupt(`ends its ${printable(entry.name)} stream early`);
      if (visited.has(mini)) throw corrupt('has a mini sector chain that loops');
      if ((mini + 1) * 4 > miniFat.length) throw corrupt('has a mini sector past its mini FAT');
      visited.add(mini);
      const at = mini * MINI_SECTOR_BYTES;
      const sector = this.miniStreamSectors[Math.floor(at / this.sectorSize)];
      if (sector === undefined) throw corrupt('has a mini sector past its mini stream');
      parts.push(
        (await this.sector(sector)).subarray(at % this.sectorSize, (at % this.sectorSize) + MINI_SECTOR_BYTES),
      );
    }
    return Buffer.concat(parts).subarray(0, entry.size);
  }

  private async loadMiniFat(): Promise<Buffer> {
    if (this.miniFat) return this.miniFat;
    const sectors = await this.chain(this.header.readUInt32LE(60), MAX_MINI_FAT_BYTES / this.sectorSize, 'mini FAT');
    this.miniFat = await this.sectors(sectors);
    return this.miniFat;
  }

  /**
   * The sectors of the chain from `start`, at most `maxSectors` of them (a stream needs no more than its size); a
   * sector seen twice is a loop, which would never end.
   */
  private async chain(start: number, maxSectors: number, what = 'stream'): Promise<number[]> {
    const sectors: number[] = [];
    const visited = new Set<number>();
    for (let sector = start; sector !== END_OF_CHAIN && sectors.length < maxSectors;) {
      if (sector === FREE_SECT) break;
      this.checkSector(sector, visited, what);
      sectors.push(sector);
      sector = await this.next(sector);
    }
    return sectors;
  }

  private checkSector(sector: number, visited: Set<number>, what: string): void {
    if (visited.has(sector)) throw corrupt(`has a ${what} sector chain that loops (sector ${sector} again)`);
    if (sector >= this.sectorCount) throw corrupt(`is truncated: its ${what} needs sector ${sector}, past its end`);
    visited.add(sector);
  }

  /** The FAT's entry for `sector`: the next sector of its chain. */
  private async next(sector: number): Promise<number> {
    const perFatSector = this.sectorSize / 4;
    const fatSector = this.fatSectors[Math.floor(sector / perFatSector)];
    if (fatSector === undefined || fatSector >= this.sectorCount)
      throw corrupt(`has no FAT entry for sector ${sector}`);
    const entry = await this.file.bytesAt((fatSector + 1) * this.sectorSize + (sector % perFatSector) * 4, 4);
    if (entry.length < 4) throw corrupt('is truncated in its FAT');
    return entry.readUInt32LE(0);
  }

  /** One after the other: the windowed file reads ahead, so neighbours come from one read. */
  private async sectors(sectors: number[]): Promise<Buffer> {
    const parts: Buffer[] = [];
    for (const sector of sectors) parts.push(await this.sector(sector));
    return Buffer.concat(parts);
  }

  private async sector(sector: number): Promise<Buffer> {
    const bytes = await this.file.bytesAt((sector + 1) * this.sectorSize, this.sectorSize);
    if (bytes.length < this.sectorSize) throw corrupt(`is truncated: sector ${sector} is incomplete`);
    return bytes;
  }
}

/** A stream's name as a message may show it: `\x05SummaryInformation` starts with a control character. */
// eslint-disable-next-line no-control-regex -- the control characters are what is taken out
const printable = (name: string): string => name.replace(/[\x00-\x1f]/g, '');

const VT_I2 = 2;
const VT_I4 = 3;
const VT_LPSTR = 0x1e;
const VT_LPWSTR = 0x1f;
const PID_CODEPAGE = 1;

/** TextDecoder's names of the code pages a property set names by number, beyond the `windows-` ones. */
const CODE_PAGES: Readonly<Record<number, string>> = {
  1200: 'utf-16le',
  65001: 'utf-8',
  932: 'shift_jis',
  936: 'gbk',
  949: 'euc-kr',
  950: 'big5',
  10000: 'macintosh',
};

/**
 * The integer and string properties of the first property set of a property set stream (SummaryInformation or
 * DocumentSummaryInformation), by property id. Offsets and lengths are checked against the stream.
 */
export function readPropertySet(stream: Buffer): Map<number, string | number> {
  const fail = () => corrupt('has a damaged property set');
  if (stream.length < 48 || stream.readUInt16LE(0) !== 0xfffe) throw fail();
  const set = stream.readUInt32LE(44);
  if (set + 8 > stream.length) throw fail();
  const count = stream.readUInt32LE(set + 4);
  if (set + 8 + count * 8 > stream.length) throw fail();
  const raw = new Map<number, number | Buffer | string>();
  for (let i = 0; i < count; i++) {
    const id = stream.readUInt32LE(set + 8 + i * 8);
    const at = set + stream.readUInt32LE(set + 12 + i * 8);
    if (at + 8 > stream.length) throw fail();
    const type = stream.readUInt16LE(at);
    if (type === VT_I2) raw.set(id, stream.readInt16LE(at + 4));
    else if (type === VT_I4) raw.set(id, stream.readInt32LE(at + 4));
    else if (type === VT_LPSTR || type === VT_LPWSTR) {
      const length = stream.readUInt32LE(at + 4) * (type === VT_LPWSTR ? 2 : 1);
      if (at + 8 + length > stream.length) throw fail();
      const bytes = stream.subarray(at + 8, at + 8 + length);
      raw.set(id, type === VT_LPWSTR ? bytes.toString('utf16le') : bytes);
    }
  }
  const decoder = decoderFor(raw.get(PID_CODEPAGE));
  const properties = new Map<number, string | number>();
  for (const [id, value] of raw) {
    if (typeof value === 'number') properties.set(id, value);
    // Strings are stored with their terminating NUL.
    else properties.set(id, (Buffer.isBuffer(value) ? decoder.decode(value) : value).replace(/\0+$/, ''));
  }
  return properties;
}

/** The property set's code page (a VT_I2 read as signed: 65001 and 1200 are stored as 16-bit). */
function decoderFor(codePage: unknown): { decode(bytes: Uint8Array): string } {
  const page = typeof codePage === 'number' ? codePage & 0xffff : 1252;
  try {
    return new TextDecoder(CODE_PAGES[page] ?? `windows-${page}`);
  } catch {
    return new TextDecoder('windows-1252');
  }
}
