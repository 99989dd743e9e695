// Walks over an image's structure before libvips is given it, counting what libvips does work for per item: a
// JPEG's scans, an animation's frames, a TIFF's directories. They read headers through 64 KiB windows, decode
// nothing, never throw on the bytes, and stop where the structure ends or makes no sense (libvips then says why).
import type { BlobReader } from './blobSource.js';
import { FieldReader, WindowedFile } from './common.js';

export type ImageStructure =
  | { format: 'jpeg'; scans: number }
  | { format: 'gif' | 'webp'; frames: number; canvas: Canvas | null }
  | { format: 'tiff'; directories: number };

/** An animation's size and alpha as its header declares them. */
export interface Canvas {
  width: number;
  height: number;
  alpha: boolean;
}

/** How far the walks that count a cost go: one past these is enough to know a cap is passed. */
export interface StructureLimits {
  jpegScans: number;
  tiffDirectories: number;
}

/** What the file holds of what libvips counts, by its magic number; null for formats walked by no one. */
export async function imageStructure(reader: BlobReader, limits: StructureLimits): Promise<ImageStructure | null> {
  const fields = new FieldReader(new WindowedFile(reader));
  if (!(await fields.has(0, 12))) return null;
  if (fields.u16(0) === 0xffd8) return { format: 'jpeg', scans: await jpegScans(fields, limits.jpegScans) };
  if (/^GIF8[79]a$/.test(fields.latin1(0, 6))) return { format: 'gif', ...(await gifFrames(fields)) };
  if (fields.latin1(0, 4) === 'RIFF' && fields.latin1(8, 4) === 'WEBP')
    return { format: 'webp', ...(await webpFrames(fields)) };
  const order = fields.latin1(0, 2);
  if (order === 'II' || order === 'MM') {
    const directories = await tiffDirectories(fields, order === 'II', limits.tiffDirectories);
    return directories === null ? null : { format: 'tiff', directories };
  }
  return null;
}

/** Markers that stand alone, without a length: SOI, TEM and the restart markers. */
const standalone = (marker: number) => marker === 0xd8 || marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7);

/** Start-of-scan markers up to `limit` + 1, each scan's entropy-coded data skipped by looking for the next marker. */
async function jpegScans(fields: FieldReader, limit: number): Promise<number> {
  let scans = 0;
  for (let at = 2; scans <= limit;) {
    if (!fields.holds(at, 4) && !(await fields.load(at, 2))) break;
    if (fields.u8(at) !== 0xff) break;
    const marker = fields.u8(at + 1);
    if (marker === 0xd9) break;
    if (marker === 0xff) {
      at += 1; // a fill byte before a marker
      continue;
    }
    if (standalone(marker)) {
      at += 2;
      continue;
    }
    if (!fields.holds(at, 4)) break;
    const length = fields.u16(at + 2);
    if (length < 2) break;
    at += 2 + length;
    if (marker === 0xda) {
      scans++;
      at = await nextMarker(fields, at);
    }
  }
  return scans;
}

/** The position of the next marker from `at` in entropy-coded data: an 0xFF not followed by a stuffed 0 or a restart. */
async function nextMarker(fields: FieldReader, at: number): Promise<number> {
  while (fields.holds(at, 2) || (await fields.load(at, 2))) {
    const window = fields.rest(at);
    for (let i = window.indexOf(0xff); i >= 0 && i + 1 < window.length; i = window.indexOf(0xff, i + 1)) {
      const next = window[i + 1]!;
      if (next !== 0x00 && !(next >= 0xd0 && next <= 0xd7)) return at + i;
    }
    // From the window's last byte: an 0xFF there is looked at again with the byte after it.
    at += Math.max(1, window.length - 1);
  }
  return at;
}

/** Bytes of a GIF colour table, from the packed field that declares it. */
const colourTableBytes = (packed: number) => (packed & 0x80 ? 3 << ((packed & 0x07) + 1) : 0);

/** Screens GIFs were often made on, whose size libnsgif (libvips' GIF decoder) takes for no size of the GIF's own. */
const MAKERS_SCREENS = new Set(['640x480', '640x512', '800x600', '1024x768', '1280x1024', '1600x1200']);

/**
 * Image descriptors of a GIF, to its trailer. The canvas is libnsgif's: the logical screen, or 1×1 when that is a
 * maker's screen, empty or over 2048, grown to hold the first frame; alpha when a frame declares a transparent colour.
 */
async function gifFrames(fields: FieldReader): Promise<{ frames: number; canvas: Canvas }> {
  const canvas = { width: fields.u16(6, true), height: fields.u16(8, true), alpha: false };
  const { width, height } = canvas;
  if (MAKERS_SCREENS.has(`${width}x${height}`) || !width || !height || width > 2048 || height > 2048)
    Object.assign(canvas, { width: 1, height: 1 });
  let frames = 0;
  // Where the next block begins, or a chain of sub-blocks (a length byte, then as many bytes) that ends in an empty one.
  let at = 13 + colourTableBytes(fields.u8(10));
  let inSubBlocks = false;
  while (fields.holds(at, 10) || (await fields.load(at, 1))) {
    if (inSubBlocks) {
      const length = fields.u8(at);
      at += 1 + length;
      inSubBlocks = length !== 0;
      continue;
    }
    const introducer = fields.u8(at);
    if (introducer === 0x21) {
      if (!fields.holds(at, 4) && !(await fields.load(at, 4))) break;
      if (fields.u8(at + 1) === 0xf9 && fields.u8(at + 2) >= 4 && fields.u8(at + 3) & 0x01) canvas.alpha = true;
      at += 2;
    } else if (introducer === 0x2c) {
      if (!fields.holds(at, 10) && !(await fields.load(at, 10))) break;
      if (frames++ === 0) {
        canvas.width = Math.max(canvas.width, fields.u16(at + 1, true) + fields.u16(at + 5, true));
        canvas.height = Math.max(canvas.height, fields.u16(at + 3, true) + fields.u16(at + 7, true));
      }
      // The descriptor, its local colour table and the LZW code size come before the data.
      at += 10 + colourTableBytes(fields.u8(at + 9)) + 1;
    } else {
      break; // the trailer (0x3b), or bytes that are no GIF block
    }
    inSubBlocks = true;
  }
  return { frames, canvas };
}

/** ANMF chunks of a WebP, to the end of its RIFF; the canvas is VP8X's, and only for an animation. */
async function webpFrames(fields: FieldReader): Promise<{ frames: number; canvas: Canvas | null }> {
  const end = 8 + fields.u32(4, true);
  let frames = 0;
  let canvas: Canvas | null = null;
  for (let at = 12; at + 8 <= end && (fields.holds(at, 8) || (await fields.load(at, 8)));) {
    const type = fields.latin1(at, 4);
    const length = fields.u32(at + 4, true);
    if (type === 'ANMF') frames++;
    if (type === 'VP8X' && length >= 10 && (await fields.has(at + 8, 10))) {
      const flags = fields.u8(at + 8);
      // Sizes are stored less one; 0x02 marks an animation, 0x10 an alpha channel.
      if (flags & 0x02)
        canvas = { width: fields.u24le(at + 12) + 1, height: fields.u24le(at + 15) + 1, alpha: Boolean(flags & 0x10) };
    }
    at += 8 + length + (length % 2);
  }
  return { frames, canvas };
}

/**
 * Image file directories of a TIFF (classic or BigTIFF), following each one's link to the next, up to `limit` + 1;
 * a link back to a directory already seen ends the chain, as it does for libtiff. Null when it is no TIFF.
 */
async function tiffDirectories(fields: FieldReader, little: boolean, limit: number): Promise<number | null> {
  const version = fields.u16(2, little);
  if (version !== 42 && version !== 43) return null;
  const big = version === 43;
  const seen = new Set<number>();
  let directories = 0;
  let at = big ? fields.u64(8, little) : fields.u32(4, little);
  while (at !== 0 && directories <= limit && !seen.has(at)) {
    seen.add(at);
    if (!(await fields.has(at, big ? 8 : 2))) break;
    const entries = big ? fields.u64(at, little) : fields.u16(at, little);
    const link = big ? at + 8 + entries * 20 : at + 2 + entries * 12;
    if (!(await fields.has(link, big ? 8 : 4))) break;
    directories++;
    at = big ? fields.u64(link, little) : fields.u32(link, little);
  }
  return directories;
}
