// Files that are small but claim a great deal of work (scans, frames, directories, pages, boxes), made by code.
// Each is valid as far as its format goes: a parser has no error to stop on, only the work it is asked for.
import sharp from 'sharp';

/** An ISO base media (MP4) box: its 4-byte big-endian length, its type, then its body. */
export function isoBox(type: string, body: Buffer = Buffer.alloc(0)): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(8 + body.length);
  header.write(type, 4, 'latin1');
  return Buffer.concat([header, body]);
}

/** Writes bits most significant first, as JPEG's entropy-coded data wants them, stuffing a 0 after each 0xFF. */
class JpegBitWriter {
  private bytes: number[] = [];
  private current = 0;
  private filled = 0;

  write(value: number, length: number): void {
    for (let bit = length - 1; bit >= 0; bit--) {
      this.current = (this.current << 1) | ((value >> bit) & 1);
      if (++this.filled === 8) this.flushByte();
    }
  }

  /** The data, its last byte padded with ones. */
  end(): Buffer {
    if (this.filled > 0) this.write(0xff, 8 - this.filled);
    return Buffer.from(this.bytes);
  }

  private flushByte(): void {
    this.bytes.push(this.current);
    if (this.current === 0xff) this.bytes.push(0);
    this.current = 0;
    this.filled = 0;
  }
}

function jpegSegment(marker: number, body: Buffer): Buffer {
  const header = Buffer.from([0xff, marker, 0, 0]);
  header.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([header, body]);
}

/**
 * A progressive greyscale JPEG of one flat grey, `width`×`height`, in `scans` scans: its DC, then the AC band
 * again and again. Every AC scan is a first scan at bit 0 (Ah = Al = 0), which libjpeg accepts without a
 * "bogus progression" warning, and holds nothing but runs of empty blocks (EOBRUN): a few bytes that make the
 * decoder visit every block of the image once per scan.
 */
export function progressiveJpeg(scans: number, width = 1024, height = 1024): Buffer {
  const blocks = Math.ceil(width / 8) * Math.ceil(height / 8);
  const quantization = jpegSegment(0xdb, Buffer.concat([Buffer.from([0]), Buffer.alloc(64, 1)]));
  const frame = Buffer.alloc(9);
  frame[0] = 8;
  frame.writeUInt16BE(height, 1);
  frame.writeUInt16BE(width, 3);
  frame.set([1, 1, 0x11, 0], 5);
  // DC: one symbol (difference category 0), code 0. AC: EOB0..EOB14 (run 2^r plus r bits), each a 4-bit code.
  const dcTable = jpegSegment(0xc4, Buffer.from([0x00, 1, ...Array<number>(15).fill(0), 0x00]));
  const eobSymbols = Array.from({ length: 15 }, (_, r) => r << 4);
  const acTable = jpegSegment(
    0xc4,
    Buffer.from([0x10, 0, 0, 0, eobSymbols.length, ...Array<number>(12).fill(0), ...eobSymbols]),
  );
  const scan = (ss: number, se: number, data: Buffer) =>
    Buffer.concat([jpegSegment(0xda, Buffer.from([1, 1, 0x00, ss, se, 0x00])), data]);

  const dc = new JpegBitWriter();
  for (let i = 0; i < blocks; i++) dc.write(0, 1);
  const ac = new JpegBitWriter();
  for (let left = blocks; left > 0;) {
    const run = Math.min(left, 0x7fff);
    const r = 31 - Math.clz32(run);
    ac.write(r, 4); // the code of EOBr is r itself: codes are given in symbol order
    ac.write(run - (1 << r), r);
    left -= run;
  }
  const acScan = scan(1, 63, ac.end());
  return Buffer.concat([
    Buffer.from([0xff, 0xd8]),
    quantization,
    jpegSegment(0xc2, frame),
    dcTable,
    acTable,
    scan(0, 0, dc.end()),
    ...Array.from({ length: scans - 1 }, () => acScan),
    Buffer.from([0xff, 0xd9]),
  ]);
}

/** Four letters or digits for `n`, all different for n < 36^4: a brand music-metadata keeps as it is. */
const brandOf = (n: number) => n.toString(36).padStart(4, '0');

/** An MP4 whose `ftyp` lists `brands` compatible brands, all different, then `rest` (e.g. a moov). */
export function mp4WithBrands(brands: number, rest: Buffer = Buffer.alloc(0)): Buffer {
  const list = Buffer.alloc(4 * brands);
  for (let i = 0; i < brands; i++) list.write(brandOf(i), 4 * i, 'latin1');
  return Buffer.concat([isoBox('ftyp', Buffer.concat([Buffer.from('isom\0\0\x02\0', 'latin1'), list])), rest]);
}

/** An MP4 of a `ftyp` and `boxes` empty `free` boxes, the shape of a box flood. */
export function mp4WithEmptyBoxes(boxes: number): Buffer {
  const free = isoBox('free');
  return Buffer.concat([
    isoBox('ftyp', Buffer.from('isom\0\0\x02\0isomiso2mp41', 'latin1')),
    ...Array<Buffer>(boxes).fill(free),
  ]);
}

/** A RIFF chunk: fourcc, little-endian length, body, a pad byte to an even length. */
function riffChunk(type: string, body: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.write(type, 0, 'latin1');
  header.writeUInt32LE(body.length, 4);
  return Buffer.concat([header, body, Buffer.alloc(body.length % 2)]);
}

const u24le = (value: number) => Buffer.from([value & 0xff, (value >> 8) & 0xff, (value >> 16) & 0xff]);

/** An animated 1×1 WebP of `frames` frames, each a lossless 1-pixel image in its ANMF chunk. */
export async function animatedWebp(frames: number): Promise<Buffer> {
  const still = await sharp({ create: { width: 1, height: 1, channels: 4, background: '#33669980' } })
    .webp({ lossless: true })
    .toBuffer();
  // A lossless still is RIFF, WEBP, then its one VP8L chunk.
  const vp8l = still.subarray(12, 12 + 8 + still.readUInt32LE(16) + (still.readUInt32LE(16) % 2));
  const anmf = riffChunk(
    'ANMF',
    Buffer.concat([u24le(0), u24le(0), u24le(0), u24le(0), u24le(40), Buffer.from([0]), vp8l]),
  );
  // Flags: alpha (0x10) and animation (0x02); the canvas is 1×1 (sizes are stored less one).
  const vp8x = riffChunk('VP8X', Buffer.concat([Buffer.from([0x12, 0, 0, 0]), u24le(0), u24le(0)]));
  const anim = riffChunk('ANIM', Buffer.from([0, 0, 0, 0, 0, 0]));
  const body = Buffer.concat([Buffer.from('WEBP', 'latin1'), vp8x, anim, ...Array<Buffer>(frames).fill(anmf)]);
  const header = Buffer.alloc(8);
  header.write('RIFF', 0, 'latin1');
  header.writeUInt32LE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** Ogg's CRC-32: polynomial 0x04c11db7, not reflected, starting at 0. */
const OGG_CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let crc = n << 24;
  for (let k = 0; k < 8; k++) crc = crc & 0x80000000 ? (crc << 1) ^ 0x04c11db7 : crc << 1;
  return crc >>> 0;
});

function oggCrc(page: Buffer): number {
  let crc = 0;
  for (const byte of page) crc = ((crc << 8) ^ OGG_CRC_TABLE[((crc >>> 24) ^ byte) & 0xff]!) >>> 0;
  return crc;
}

/** Writes at `at` an Ogg page of one packet (at most 255 bytes) with its checksum; flags: 2 begins the stream, 4 ends it. */
function writeOggPage(
  out: Buffer,
  at: number,
  packet: Buffer,
  { sequence, granule, flags = 0, serial }: { sequence: number; granule: bigint; flags?: number; serial: number },
): number {
  const page = out.subarray(at, at + 27 + 1 + packet.length);
  page.write('OggS', 0, 'latin1');
  page[5] = flags;
  page.writeBigUInt64LE(granule, 6);
  page.writeUInt32LE(serial, 14);
  page.writeUInt32LE(sequence, 18);
  page.writeUInt32LE(0, 22);
  page[26] = 1;
  page[27] = packet.length;
  packet.copy(page, 28);
  page.writeUInt32LE(oggCrc(page), 22);
  return at + page.length;
}

/**
 * An Ogg Opus stream of `pages` pages: the identification and comment headers, then pages of one 1-byte packet
 * each (20 ms of silence), the last one marked as the end; 29 bytes a page. With `continued`, every audio page
 * after the first continues the packet of the one before, so that they all make one packet.
 */
export function oggOpus(
  pages: number,
  { continued = false, serial = 0x5eed }: { continued?: boolean; serial?: number } = {},
): Buffer {
  const head = Buffer.alloc(19);
  head.write('OpusHead', 0, 'latin1');
  head[8] = 1; // version
  head[9] = 2; // channels
  head.writeUInt16LE(312, 10); // pre-skip
  head.writeUInt32LE(48_000, 12);
  const vendor = 'hostile';
  const tags = Buffer.alloc(8 + 4 + vendor.length + 4);
  tags.write('OpusTags', 0, 'latin1');
  tags.writeUInt32LE(vendor.length, 8);
  tags.write(vendor, 12, 'latin1');
  const silence = Buffer.from([0xf8]); // TOC: a 20 ms CELT frame, code 0, and nothing after: silence
  const out = Buffer.alloc(28 + head.length + 28 + tags.length + (pages - 2) * (28 + silence.length));
  let at = writeOggPage(out, 0, head, { sequence: 0, granule: 0n, flags: 2, serial });
  at = writeOggPage(out, at, tags, { sequence: 1, granule: 0n, serial });
  for (let sequence = 2; sequence < pages; sequence++) {
    const flags = (sequence === pages - 1 ? 4 : 0) | (continued && sequence > 2 ? 1 : 0);
    at = writeOggPage(out, at, silence, { sequence, granule: 312n + BigInt(sequence - 1) * 960n, flags, serial });
  }
  return out;
}

/**
 * A TIFF of `directories` 1×1 greyscale images, each directory (IFD) linking to the next and pointing at one shared
 * pixel: little-endian unless `bigEndian`, classic (4-byte offsets) unless `bigTiff` (8-byte offsets, BigTIFF).
 */
export function tiffOfDirectories(
  directories: number,
  { bigEndian = false, bigTiff = false }: { bigEndian?: boolean; bigTiff?: boolean } = {},
): Buffer {
  // Tag, type (3 SHORT, 4 LONG), value: width, height, bits, no compression, black is zero, strip, samples, rows, bytes.
  const tags: Array<[number, number, number]> = [
    [256, 3, 1],
    [257, 3, 1],
    [258, 3, 8],
    [259, 3, 1],
    [262, 3, 1],
    [273, 4, 8],
    [277, 3, 1],
    [278, 3, 1],
    [279, 4, 1],
  ];
  const offsetBytes = bigTiff ? 8 : 4;
  const entryBytes = bigTiff ? 20 : 12;
  const countBytes = bigTiff ? 8 : 2;
  const ifdBytes = countBytes + tags.length * entryBytes + offsetBytes;
  const firstIfd = bigTiff ? 18 : 10; // after the header and the pixel, on an even offset
  const out = Buffer.alloc(firstIfd + directories * ifdBytes);
  const u16 = (value: number, at: number) => (bigEndian ? out.writeUInt16BE(value, at) : out.writeUInt16LE(value, at));
  const u32 = (value: number, at: number) => (bigEndian ? out.writeUInt32BE(value, at) : out.writeUInt32LE(value, at));
  const offset = (value: number, at: number) =>
    bigTiff
      ? bigEndian
        ? out.writeBigUInt64BE(BigInt(value), at)
        : out.writeBigUInt64LE(BigInt(value), at)
      : u32(value, at);
  out.write(bigEndian ? 'MM' : 'II', 0, 'latin1');
  u16(bigTiff ? 43 : 42, 2);
  if (bigTiff) {
    u16(8, 4); // the size of an offset
    u16(0, 6);
  }
  offset(firstIfd, bigTiff ? 8 : 4);
  out[firstIfd - 2] = 0x80; // the pixel
  for (let i = 0; i < directories; i++) {
    let at = firstIfd + i * ifdBytes;
    at = bigTiff ? offset(tags.length, at) : u16(tags.length, at);
    for (const [tag, type, value] of tags) {
      at = u16(tag, at);
      at = u16(type, at);
      at = bigTiff ? offset(1, at) : u32(1, at);
      // A value fits in the entry, at its start; the rest of the field stays zero.
      (type === 3 ? u16 : u32)(tag === 273 ? firstIfd - 2 : value, at);
      at += offsetBytes;
    }
    offset(i + 1 < directories ? at + offsetBytes : 0, at);
  }
  return out;
}

/** One GIF frame of one pixel, with its graphic control extension. */
const GIF_FRAME = Buffer.from('21f9040001000000' + '2c000000000100010000' + '0202440100', 'hex');

/** An animated 1×1 GIF of `frames` frames, 24 bytes each. */
export function gif(frames: number): Buffer {
  const header = Buffer.from('474946383961' + '01000100' + '800000' + '000000ffffff', 'hex');
  return Buffer.concat([header, ...Array<Buffer>(frames).fill(GIF_FRAME), Buffer.from(';')]);
}
