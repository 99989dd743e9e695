// Walks over a media container's structure before music-metadata is given it, counting what it does work for per
// item: an Ogg file's pages (and the pages of each packet, and its logical streams), an MP4's boxes and brands.
// They read headers through 64 KiB windows, never throw on the bytes, and stop where the structure ends or makes
// no sense (music-metadata then says why), or once a count is one past its limit.
import type { BlobReader } from './blobSource.js';
import { FieldReader, WindowedFile } from './common.js';

export type MediaStructure = OggStructure | IsoStructure;

export interface OggStructure {
  container: 'ogg';
  /** Pages music-metadata would read, up to the limit + 1. */
  pages: number;
  /** Bytes of the first `limit` pages: where a reading that stops at the limit ends. */
  bytesWithinLimit: number;
  /** Logical streams, up to the limit + 1. */
  streams: number;
  /** The most pages one packet spans, up to the limit + 1. */
  packetPages: number;
}

export interface IsoStructure {
  container: 'iso';
  /** Boxes music-metadata would read, up to the limit + 1. */
  boxes: number;
  /** Compatible brands listed in file type (`ftyp`) boxes. */
  brands: number;
}

export interface MediaLimits {
  oggPages: number;
  oggStreams: number;
  oggPacketPages: number;
  isoBoxes: number;
}

/** Box types at byte 4 by which file-type (and so music-metadata) takes a file for ISO base media (MP4, QuickTime). */
const ISO_FIRST_BOXES = new Set(['ftyp', 'free', 'mdat', 'moov', 'wide']);

/** What the container holds of what music-metadata counts, by its first bytes; null for containers walked by no one. */
export async function mediaStructure(
  reader: BlobReader,
  size: number,
  limits: MediaLimits,
): Promise<MediaStructure | null> {
  const fields = new FieldReader(new WindowedFile(reader));
  if (!(await fields.has(0, 8))) return null;
  if (fields.latin1(0, 4) === 'OggS') return oggPages(fields, size, limits);
  if (ISO_FIRST_BOXES.has(fields.latin1(4, 4))) return isoBoxes(fields, size, limits.isoBoxes);
  return null;
}

/**
 * Ogg pages as music-metadata reads them: from the first, until every stream begun has ended (a chained file's
 * later links are not read). A packet's pages are those its first page's successors mark as continued.
 */
async function oggPages(fields: FieldReader, size: number, limits: MediaLimits): Promise<OggStructure> {
  const found: OggStructure = { container: 'ogg', pages: 0, bytesWithinLimit: size, streams: 0, packetPages: 0 };
  const packetPagesOf = new Map<number, number>();
  const open = new Set<number>();
  for (let at = 0; at + 27 <= size;) {
    if (!fields.holds(at, 27) && !(await fields.load(at, 27))) break;
    if (fields.latin1(at, 4) !== 'OggS') break;
    const segments = fields.u8(at + 26);
    if (!fields.holds(at, 27 + segments) && !(await fields.load(at, 27 + segments))) break;
    if (found.pages === limits.oggPages) found.bytesWithinLimit = at;
    if (++found.pages > limits.oggPages) break;
    const flags = fields.u8(at + 5);
    const serial = fields.u32(at + 14, true);
    if (!packetPagesOf.has(serial)) {
      open.add(serial);
      if (++found.streams > limits.oggStreams) break;
    }
    // Flag 1: the page continues the packet of the page before.
    const packetPages = flags & 0x01 ? (packetPagesOf.get(serial) ?? 0) + 1 : 1;
    packetPagesOf.set(serial, packetPages);
    found.packetPages = Math.max(found.packetPages, packetPages);
    if (packetPages > limits.oggPacketPages) break;
    // Flag 4: the stream's last page.
    if (flags & 0x04 && open.delete(serial) && open.size === 0) break;
    let body = 0;
    for (let i = 0; i < segments; i++) body += fields.u8(at + 27 + i);
    at += 27 + segments + body;
  }
  return found;
}

/** Boxes music-metadata reads the boxes inside of; the items of a metadata list (`ilst`) are such boxes too. */
const ISO_CONTAINERS = new Set([
  'moov',
  'trak',
  'udta',
  'mdia',
  'minf',
  'stbl',
  'tref',
  'moof',
  'traf',
  'meta',
  'ilst',
]);
const isContainer = (type: string, parent: string) => ISO_CONTAINERS.has(type) || parent === 'ilst';

/** Boxes at every level music-metadata descends to, and the brands of the file type boxes among them. */
async function isoBoxes(fields: FieldReader, size: number, limit: number): Promise<IsoStructure> {
  const found: IsoStructure = { container: 'iso', boxes: 0, brands: 0 };
  // Ranges of boxes still to walk, with the type of the box that holds them.
  const pending: Array<{ from: number; to: number; parent: string }> = [{ from: 0, to: size, parent: '' }];
  for (let range = pending.pop(); range && found.boxes <= limit; range = pending.pop()) {
    for (let at = range.from; at + 8 <= range.to && found.boxes <= limit;) {
      if (!fields.holds(at, 8) && !(await fields.load(at, 8))) break;
      const type = fields.latin1(at + 4, 4);
      let header = 8;
      let length = fields.u32(at);
      if (length === 1) {
        if (!(await fields.has(at, 16))) break;
        length = fields.u64(at + 8);
        header = 16;
      } else if (length === 0) {
        length = range.to - at; // to the end of what holds it
      }
      if (length < header || at + length > range.to) break;
      found.boxes++;
      // Its content is a major brand, a minor version, then the compatible brands, four bytes each.
      if (type === 'ftyp') found.brands += Math.max(0, Math.floor((length - header - 8) / 4));
      if (isContainer(type, range.parent)) {
        let from = at + header;
        // A meta box may begin with a version and flags, which music-metadata skips unless a handler box is there.
        if (type === 'meta' && (await fields.has(from, 8)) && fields.latin1(from + 4, 4) !== 'hdlr') from += 4;
        pending.push({ from, to: at + length, parent: type });
      }
      at += length;
    }
  }
  return found;
}
