// Files for the richer results (issue 28), made by code: EXIF blocks, BMPs, AVIs and compressed tars, honest or
// hostile. Real tools (ffmpeg, tar) make the honest media in the tests themselves.

/** One TIFF directory entry: tag, type, count, and the 4-byte value or offset field. */
export type IfdEntry = [tag: number, type: number, count: number, value: number];

/** A little-endian TIFF directory at its place in a block: its entries and the link to the next directory. */
function ifd(entries: IfdEntry[], next = 0): Buffer {
  const bytes = Buffer.alloc(2 + entries.length * 12 + 4);
  bytes.writeUInt16LE(entries.length, 0);
  entries.forEach(([tag, type, count, value], i) => {
    bytes.writeUInt16LE(tag, 2 + i * 12);
    bytes.writeUInt16LE(type, 4 + i * 12);
    bytes.writeUInt32LE(count >>> 0, 6 + i * 12);
    bytes.writeUInt32LE(value >>> 0, 10 + i * 12);
  });
  bytes.writeUInt32LE(next >>> 0, 2 + entries.length * 12);
  return bytes;
}

/**
 * A hostile EXIF block (`Exif\0\0`, then a little-endian TIFF): IFD0 claims 65,535 entries, links to itself as its
 * next directory, as its Exif directory and as its GPS directory, and its Make, date and latitude point past the end; only its Model ('Acme', held in its entry) can be read.
 */
export function loopingExif(): Buffer {
  const directory = ifd(
    [
      [0x010f, 2, 0xffffffff, 0x7ffffff0], // Make: 4 GiB of text, past the end
      [0x0110, 2, 4, Buffer.from('Acme', 'latin1').readUInt32LE(0)], // Model: 'Acme', inside the entry
      [0x9003, 2, 20, 0xfffffff0], // DateTimeOriginal (misplaced in IFD0, read again as the Exif directory): past the end
      [0x0002, 5, 3, 0x7ffffff0], // GPSLatitude (read again as the GPS directory): past the end
      [0x8769, 4, 1, 8], // Exif directory: IFD0 itself
      [0x8825, 4, 1, 8], // GPS directory: IFD0 itself
    ],
    8,
  );
  directory.writeUInt16LE(0xffff, 0);
  return Buffer.concat([Buffer.from('Exif\0\0II*\0', 'latin1'), Buffer.from([8, 0, 0, 0]), directory]);
}

/** `jpeg` with `exif` as an APP1 segment right after its start-of-image marker. */
export function withApp1(jpeg: Buffer, exif: Buffer): Buffer {
  const marker = Buffer.from([0xff, 0xe1, 0, 0]);
  marker.writeUInt16BE(exif.length + 2, 2);
  return Buffer.concat([jpeg.subarray(0, 2), marker, exif, jpeg.subarray(2)]);
}

/** A BMP header (BITMAPINFOHEADER) declaring `width`×`height` at `bitsPerPixel`, `compression`, and `pixels` after it. */
export function bmpDeclaring(
  width: number,
  height: number,
  bitsPerPixel = 24,
  compression = 0,
  pixels = Buffer.alloc(0),
): Buffer {
  const header = Buffer.alloc(54);
  header.write('BM', 0, 'latin1');
  header.writeUInt32LE(54 + pixels.length, 2);
  header.writeUInt32LE(54, 10);
  header.writeUInt32LE(40, 14);
  header.writeInt32LE(width, 18);
  header.writeInt32LE(height, 22);
  header.writeUInt16LE(1, 26);
  header.writeUInt16LE(bitsPerPixel, 28);
  header.writeUInt32LE(compression, 30);
  header.writeUInt32LE(pixels.length, 34);
  return Buffer.concat([header, pixels]);
}
