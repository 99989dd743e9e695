// BMP, which libvips does not load: its header read by us, and its pixels, when stored uncompressed, turned into raw
// RGB(A) rows that sharp takes. The size is checked against the pixel limit before a row is read, and the rows are
// read a slice at a time into the one buffer the pixels need. RLE and embedded JPEG/PNG are read for the header only.
import type { BlobReader } from './blobSource.js';
import { ProcessingError } from './types.js';

export interface BmpHeader {
  width: number;
  height: number;
  bitsPerPixel: number;
  /** BI_RGB (0), BI_RLE8 (1), BI_RLE4 (2), BI_BITFIELDS (3), BI_JPEG (4), BI_PNG (5), BI_ALPHABITFIELDS (6). */
  compression: number;
  /** Rows are stored top row first (a negative height); BMPs are usually stored bottom row first. */
  topDown: boolean;
  pixelsAt: number;
  /** Red, green, blue and alpha masks of 16- and 32-bit pixels. */
  masks: [number, number, number, number];
  /** Colour table entries (blue, green, red), for 1 to 8 bits per pixel. */
  palette: Buffer | null;
  alpha: boolean;
}

export const isBmp = (head: Buffer): boolean => head.length >= 18 && head.toString('latin1', 0, 2) === 'BM';

const HEADER_BYTES = 14 + 124;
const BI_RGB = 0;
const BI_BITFIELDS = 3;
const BI_ALPHABITFIELDS = 6;
const corrupt = (what: string) => new ProcessingError('corrupt_file', `The BMP ${what}.`);

/** The BMP's header and colour table; a ProcessingError, in our words, when they make no sense. */
export async function readBmpHeader(reader: BlobReader): Promise<BmpHeader> {
  const head = Buffer.alloc(HEADER_BYTES);
  const { bytesRead } = await reader.read(head, 0, head.length, 0);
  if (bytesRead < 26) throw corrupt('ends inside its header');
  const pixelsAt = head.readUInt32LE(10);
  const infoBytes = head.readUInt32LE(14);
  // OS/2 1.x's 12-byte header has 16-bit sizes; every later one (40 to 124 bytes) begins as BITMAPINFOHEADER does.
  const core = infoBytes === 12;
  if (!core && (infoBytes < 40 || infoBytes > 124))
    throw corrupt(`has a header of ${infoBytes} bytes, which no version of the format has`);
  if (bytesRead < 14 + infoBytes) throw corrupt('ends inside its header');
  const width = core ? head.readUInt16LE(18) : head.readInt32LE(18);
  const signedHeight = core ? head.readUInt16LE(20) : head.readInt32LE(22);
  const bitsPerPixel = head.readUInt16LE(core ? 24 : 28);
  const compression = core ? BI_RGB : head.readUInt32LE(30);
  if (width <= 0 || signedHeight === 0 || signedHeight === -0x80000000) throw corrupt('declares no size');
  if (![1, 2, 4, 8, 16, 24, 32].includes(bitsPerPixel)) throw corrupt(`declares ${bitsPerPixel} bits per pixel`);
  const masks = pixelMasks(head, infoBytes, bitsPerPixel, compression);
  let palette: Buffer | null = null;
  if (bitsPerPixel <= 8) {
    const declared = core ? 0 : head.readUInt32LE(46);
    const entries = Math.min(declared || 2 ** bitsPerPixel, 2 ** bitsPerPixel);
    const entryBytes = core ? 3 : 4;
    const table = Buffer.alloc(entries * entryBytes);
    const read = await reader.read(table, 0, table.length, 14 + infoBytes + (compression === BI_BITFIELDS ? 12 : 0));
    palette = Buffer.alloc(256 * 3);
    for (let i = 0; i < Math.floor(read.bytesRead / entryBytes); i++)
      table.copy(palette, i * 3, i * entryBytes, i * entryBytes + 3);
  }
  return {
    width,
    height: Math.abs(signedHeight),
    bitsPerPixel,
    compression,
    topDown: signedHeight < 0,
    pixelsAt,
    masks,
    palette,
    alpha: masks[3] !== 0,
  };
}

/** Masks of 16- and 32-bit pixels: in the header (V2 and later), after it (BI_BITFIELDS), or the defaults. */
function pixelMasks(head: Buffer, infoBytes: number, bitsPerPixel: number, compression: number): BmpHeader['masks'] {
  if (compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS) {
    const at = 14 + 40;
    if (head.length < at + 16) throw corrupt('ends inside its colour masks');
    const alpha = compression === BI_ALPHABITFIELDS || infoBytes >= 56 ? head.readUInt32LE(at + 12) : 0;
    return [head.readUInt32LE(at), head.readUInt32LE(at + 4), head.readUInt32LE(at + 8), alpha];
  }
  if (bitsPerPixel === 16) return [0x7c00, 0x03e0, 0x001f, 0];
  // The fourth byte of a BI_RGB 32-bit pixel is unused (often zero): not alpha.
  return [0x00ff0000, 0x0000ff00, 0x000000ff, 0];
}

/** Bytes read at a time: many rows of a narrow image, at least one of a wide one. */
const SLICE_BYTES = 1024 * 1024;

/**
 * The pixels as raw 8-bit RGB or RGBA rows, top row first, for sharp; null when they are not stored uncompressed
 * (RLE, JPEG, PNG). The caller checks the size against the pixel limit first.
 */
export async function readBmpPixels(
  reader: BlobReader,
  header: BmpHeader,
): Promise<{ data: Buffer; channels: 3 | 4 } | null> {
  const { width, height, bitsPerPixel, compression, masks, palette } = header;
  const uncompressed =
    compression === BI_RGB ||
    ((compression === BI_BITFIELDS || compression === BI_ALPHABITFIELDS) && bitsPerPixel >= 16);
  if (!uncompressed) return null;
  const channels = header.alpha ? 4 : 3;
  const rowBytes = Math.ceil((width * bitsPerPixel) / 32) * 4;
  // The last byte of the last row is there before the pixels' buffer is allocated: a short file costs nothing.
  const { bytesRead: last } = await reader.read(Buffer.alloc(1), 0, 1, header.pixelsAt + rowBytes * height - 1);
  if (last === 0) throw corrupt('ends before the last of the pixel rows its header declares');
  const data = Buffer.alloc(width * height * channels);
  const rowsPerSlice = Math.max(1, Math.floor(SLICE_BYTES / rowBytes));
  const slice = Buffer.alloc(rowsPerSlice * rowBytes);
  const channel = masks.map(maskShape);
  for (let first = 0; first < height; first += rowsPerSlice) {
    const rows = Math.min(rowsPerSlice, height - first);
    const { bytesRead } = await reader.read(slice, 0, rows * rowBytes, header.pixelsAt + first * rowBytes);
    if (bytesRead < rows * rowBytes) throw corrupt('ends before the last of the pixel rows its header declares');
    for (let r = 0; r < rows; r++) {
      const stored = first + r;
      const y = header.topDown ? stored : height - 1 - stored;
      const source = r * rowBytes;
      let out = y * width * channels;
      for (let x = 0; x < width; x++, out += channels) {
        if (palette) {
          const bitAt = x * bitsPerPixel;
          const byte = slice[source + (bitAt >> 3)]!;
          const index = (byte >> (8 - bitsPerPixel - (bitAt & 7))) & ((1 << bitsPerPixel) - 1);
          data[out] = palette[index * 3 + 2]!;
          data[out + 1] = palette[index * 3 + 1]!;
          data[out + 2] = palette[index * 3]!;
        } else if (bitsPerPixel === 24) {
          const at = source + x * 3;
          data[out] = slice[at + 2]!;
          data[out + 1] = slice[at + 1]!;
          data[out + 2] = slice[at]!;
        } else {
          const at = source + x * (bitsPerPixel / 8);
          const pixel = bitsPerPixel === 16 ? slice.readUInt16LE(at) : slice.readUInt32LE(at);
          for (let c = 0; c < channels; c++) data[out + c] = channel[c]!(pixel);
        }
      }
    }
  }
  return { data, channels };
}

/** A colour mask as a function from a pixel to that channel scaled to 8 bits (0 for an empty mask). */
function maskShape(mask: number): (pixel: number) => number {
  if (mask === 0) return () => 0;
  let shift = 0;
  while (((mask >>> shift) & 1) === 0) shift++;
  const max = mask >>> shift;
  return (pixel) => Math.round((((pixel & mask) >>> shift) * 255) / max);
}
