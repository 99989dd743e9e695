// Files for the richer results (issue 28), made by code: EXIF blocks, ID3 tags, AVIs and tar headers, honest or
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

/** An ID3v1 tag (the 128 bytes at the end of an MP3): title, artist, album and year, Latin-1, NUL-padded. */
export function id3v1(title: string, artist: string, album: string, year: string): Buffer {
  const tag = Buffer.alloc(128);
  tag.write('TAG', 0, 'latin1');
  tag.write(title, 3, 30, 'latin1');
  tag.write(artist, 33, 30, 'latin1');
  tag.write(album, 63, 30, 'latin1');
  tag.write(year, 93, 4, 'latin1');
  tag[127] = 255; // no genre
  return tag;
}

/** A RIFF chunk: its id, its little-endian size, its content and the pad byte of an odd size. */
function riffChunk(id: string, content: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.write(id, 0, 'latin1');
  header.writeUInt32LE(content.length, 4);
  return Buffer.concat([header, content, Buffer.alloc(content.length % 2)]);
}

const riffList = (type: string, chunks: Buffer[]) =>
  riffChunk('LIST', Buffer.concat([Buffer.from(type, 'latin1'), ...chunks]));

/**
 * An AVI whose headers lie: the header list claims 4 GiB, the main header a billion streams of 2^31 − 1 pixels
 * square, the one stream header 2^32 − 1 frames at one a second, and then 100,000 empty chunks before the frames.
 */
export function lyingAvi(): Buffer {
  const avih = Buffer.alloc(56);
  avih.writeUInt32LE(1_000_000, 0); // one frame a second
  avih.writeUInt32LE(0xffffffff, 16); // total frames
  avih.writeUInt32LE(1_000_000_000, 24); // streams
  avih.writeUInt32LE(0x7fffffff, 32);
  avih.writeUInt32LE(0x7fffffff, 36);
  const strh = Buffer.alloc(56);
  strh.write('vidsH264', 0, 'latin1');
  strh.writeUInt32LE(1, 20); // scale
  strh.writeUInt32LE(1, 24); // rate
  strh.writeUInt32LE(0xffffffff, 32); // length
  const headerList = riffList('hdrl', [riffChunk('avih', avih), riffList('strl', [riffChunk('strh', strh)])]);
  headerList.writeUInt32LE(0xfffffff0, 4);
  const junk = Buffer.concat(Array.from({ length: 100_000 }, () => riffChunk('JUNK', Buffer.alloc(0))));
  const body = Buffer.concat([Buffer.from('AVI ', 'latin1'), headerList, junk, riffList('movi', [])]);
  return riffChunk('RIFF', body);
}

/** An ID3v2.3 tag of one title frame of `bytes` Latin-1 characters, before `audio`. */
export function id3v2Title(bytes: number, audio: Buffer): Buffer {
  const frame = Buffer.alloc(10 + 1 + bytes, 0x61);
  frame.write('TIT2', 0, 'latin1');
  frame.writeUInt32BE(1 + bytes, 4);
  frame.writeUInt16BE(0, 8);
  frame[10] = 0; // Latin-1
  const header = Buffer.from('ID3\x03\x00\x00\x00\x00\x00\x00', 'latin1');
  // The tag's size, in four 7-bit bytes.
  for (let i = 0, size = frame.length; i < 4; i++) header[9 - i] = (size >> (7 * i)) & 0x7f;
  return Buffer.concat([header, frame, audio]);
}

/** A ustar header for a regular file `name` of `size` bytes (octal, so under 8 GiB), checksum and all. */
export function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  header.write(name, 0, 100, 'utf8');
  header.write('0000644\0', 100, 'latin1');
  header.write('0000000\0', 108, 'latin1');
  header.write('0000000\0', 116, 'latin1');
  header.write(`${size.toString(8).padStart(11, '0')}\0`, 124, 'latin1');
  header.write('00000000000\0', 136, 'latin1');
  header.write('        ', 148, 'latin1');
  header.write('0', 156, 'latin1');
  header.write('ustar\x0000', 257, 'latin1');
  const sum = header.reduce((total, byte) => total + byte, 0);
  header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 'latin1');
  return header;
}
