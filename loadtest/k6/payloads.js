// @ts-check
// Files generated in code (k6's open() reads files from disk only): text, PNG, PDF, zip and a large
// MP4-headed binary, each valid enough that the service sniffs it as the kind it claims to be.
import { randomBytes } from 'k6/crypto';
import { envWeights } from './lib.js';

/** @typedef {import('./lib.js').Payload} Payload */

export const KIB = 1024;
const MIB = 1024 * KIB;

const WORDS =
  'the queue worker file upload stream hash bytes row status processed kind text image archive pod replica latency'.split(
    ' ',
  );

/**
 * Readable ASCII text (so one character is one byte) of exactly `size` bytes.
 * @param {number} size
 */
function words(size) {
  const parts = [];
  let length = 0;
  for (let i = 0; length < size; i++) {
    const word = WORDS[(i * 7 + (i >> 3)) % WORDS.length] || 'x';
    const separator = i % 12 === 11 ? '\n' : ' ';
    parts.push(word, separator);
    length += word.length + 1;
  }
  return parts.join('').slice(0, size);
}

/** Built once per VU: text payloads are a unique first line plus a slice of it. */
const CORPUS = words(64 * KIB);

/**
 * A text file of exactly `size` bytes whose first line makes it unique.
 * @param {number} size at least 1 and at most 64 KiB
 * @param {string} label
 * @returns {Payload}
 */
export function textPayload(size, label) {
  const first = `${label}\n`.slice(0, size);
  return {
    bytes: first + CORPUS.slice(0, size - first.length),
    name: `${label}.txt`,
    contentType: 'text/plain',
    kind: 'text',
  };
}

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

/**
 * @param {Uint8Array} bytes
 * @param {number} [start]
 * @param {number} [end]
 */
function crc32(bytes, start = 0, end = bytes.length) {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = (CRC_TABLE[(crc ^ (bytes[i] || 0)) & 0xff] || 0) ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** @param {Uint8Array} bytes */
function adler32(bytes) {
  let a = 1;
  let b = 0;
  for (let i = 0; i < bytes.length; i++) {
    a = (a + (bytes[i] || 0)) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/** Writes big- or little-endian integers and byte runs into one buffer. */
class ByteWriter {
  /** @param {number} size */
  constructor(size) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.offset = 0;
  }
  /** @param {number} value */
  u8(value) {
    this.view.setUint8(this.offset, value);
    this.offset += 1;
  }
  /** @param {number} value @param {boolean} [little] */
  u16(value, little = false) {
    this.view.setUint16(this.offset, value, little);
    this.offset += 2;
  }
  /** @param {number} value @param {boolean} [little] */
  u32(value, little = false) {
    this.view.setUint32(this.offset, value, little);
    this.offset += 4;
  }
  /** @param {Uint8Array | string} data */
  put(data) {
    if (typeof data === 'string') for (let i = 0; i < data.length; i++) this.u8(data.charCodeAt(i));
    else {
      this.bytes.set(data, this.offset);
      this.offset += data.length;
    }
  }
}

/**
 * zlib with stored (uncompressed) deflate blocks: valid without a deflate implementation, and random
 * pixels would not compress anyway.
 * @param {Uint8Array} data
 */
function zlibStored(data) {
  const blocks = Math.max(1, Math.ceil(data.length / 65535));
  const out = new ByteWriter(2 + blocks * 5 + data.length + 4);
  out.u8(0x78);
  out.u8(0x01);
  for (let block = 0; block < blocks; block++) {
    const part = data.subarray(block * 65535, Math.min(data.length, (block + 1) * 65535));
    out.u8(block === blocks - 1 ? 1 : 0);
    out.u16(part.length, true);
    out.u16(~part.length & 0xffff, true);
    out.put(part);
  }
  out.u32(adler32(data));
  return out.bytes;
}

/**
 * A valid RGB PNG of about `approxSize` bytes, random pixels (so it does not compress below that size).
 * @param {number} approxSize
 * @param {string} label
 * @returns {Payload}
 */
export function pngPayload(approxSize, label) {
  const width = 256;
  const rowBytes = 1 + width * 3;
  const height = Math.max(1, Math.round(approxSize / rowBytes));
  const pixels = new Uint8Array(randomBytes(rowBytes * height));
  for (let row = 0; row < height; row++) pixels[row * rowBytes] = 0;
  const header = new ByteWriter(13);
  header.u32(width);
  header.u32(height);
  header.put(new Uint8Array([8, 2, 0, 0, 0]));
  /** @type {Array<[string, Uint8Array]>} */
  const chunks = [
    ['IHDR', header.bytes],
    ['IDAT', zlibStored(pixels)],
    ['IEND', new Uint8Array(0)],
  ];
  const size = 8 + chunks.reduce((sum, [, data]) => sum + 12 + data.length, 0);
  const out = new ByteWriter(size);
  out.put(new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
  for (const [type, data] of chunks) {
    out.u32(data.length);
    const start = out.offset;
    out.put(type);
    out.put(data);
    out.u32(crc32(out.bytes, start, out.offset));
  }
  return { bytes: out.bytes.buffer, name: `${label}.png`, contentType: 'image/png', kind: 'image' };
}

/**
 * A valid one-page PDF of about `approxSize` bytes (a long text content stream, with a correct xref).
 * @param {number} approxSize
 * @param {string} label
 * @returns {Payload}
 */
export function pdfPayload(approxSize, label) {
  const lines = [];
  for (let length = 0, y = 0; length < approxSize; y++) {
    const line = `BT /F1 9 Tf 36 ${760 - (y % 80) * 9} Td (${label} line ${y} ${CORPUS.slice(y % 512, (y % 512) + 60).replace(/\n/g, ' ')}) Tj ET\n`;
    lines.push(line);
    length += line.length;
  }
  const content = lines.join('');
  const objects = [
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${content.length} >>\nstream\n${content}endstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ];
  let pdf = '%PDF-1.4\n';
  const offsets = objects.map((body, index) => {
    const offset = pdf.length;
    pdf += `${index + 1} 0 obj\n${body}\nendobj\n`;
    return offset;
  });
  const xref = pdf.length;
  pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
  pdf += offsets.map((offset) => `${String(offset).padStart(10, '0')} 00000 n \n`).join('');
  pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
  return { bytes: pdf, name: `${label}.pdf`, contentType: 'application/pdf', kind: 'pdf' };
}

/**
 * A valid zip holding one stored (uncompressed) entry of `entrySize` random bytes.
 * @param {number} entrySize
 * @param {string} label
 * @returns {Payload}
 */
export function zipPayload(entrySize, label) {
  const entryName = `${label}.bin`;
  const data = new Uint8Array(randomBytes(entrySize));
  const crc = crc32(data);
  const local = 30 + entryName.length;
  const central = 46 + entryName.length;
  const out = new ByteWriter(local + data.length + central + 22);
  /** @param {number} signature */
  const entryHeader = (signature) => {
    out.u32(signature, true);
    if (signature === 0x02014b50) out.u16(20, true);
    out.u16(20, true);
    out.u16(0, true);
    out.u16(0, true);
    out.u32(0, true);
    out.u32(crc, true);
    out.u32(data.length, true);
    out.u32(data.length, true);
    out.u16(entryName.length, true);
    out.u16(0, true);
  };
  entryHeader(0x04034b50);
  out.put(entryName);
  out.put(data);
  const centralStart = out.offset;
  entryHeader(0x02014b50);
  out.u16(0, true);
  out.u16(0, true);
  out.u16(0, true);
  out.u32(0, true);
  out.u32(0, true);
  out.put(entryName);
  out.u32(0x06054b50, true);
  out.u16(0, true);
  out.u16(0, true);
  out.u16(1, true);
  out.u16(1, true);
  out.u32(central, true);
  out.u32(centralStart, true);
  out.u16(0, true);
  return { bytes: out.bytes.buffer, name: `${label}.zip`, contentType: 'application/zip', kind: 'archive' };
}

/** An MP4 `ftyp` box: the head the service sniffs as video/mp4. */
const MP4_HEAD = [
  0,
  0,
  0,
  0x18,
  ...'ftypisom'.split('').map((c) => c.charCodeAt(0)),
  0,
  0,
  2,
  0,
  ...'isomiso2'.split('').map((c) => c.charCodeAt(0)),
];

/**
 * A large video-like file: an MP4 head and random bytes, made fresh each time so only the uploads in
 * flight hold memory.
 * @param {number} size
 * @param {string} label
 * @returns {Payload}
 */
export function largePayload(size, label) {
  const bytes = new Uint8Array(randomBytes(size));
  bytes.set(MP4_HEAD);
  return { bytes: bytes.buffer, name: `${label}.mp4`, contentType: 'video/mp4', kind: 'video' };
}

/**
 * @param {number} min
 * @param {number} max
 */
function between(min, max) {
  return Math.floor(min + Math.random() * (max - min + 1));
}

/**
 * The realistic mix: 70% text of 1-64 KiB, 20% PNG of 50-500 KiB, 8% PDF or zip of about 1 MiB, 2% video of
 * 10-50 MiB by default (`MIX=text:70,image:20,document:8,large:2`). Images and documents come from a pool
 * built once per VU, because building them costs far more than sending them.
 * @param {Array<{ name: string, weight: number }>} weights
 * @returns {(label: string) => Payload}
 */
export function payloadMix(weights) {
  const known = ['text', 'image', 'document', 'large'];
  const unknown = weights.filter(({ name }) => !known.includes(name));
  if (unknown.length)
    throw new Error(
      `MIX names one of ${known.join(', ')}; "${unknown.map(({ name }) => name).join(', ')}" is none of them.`,
    );
  const total = weights.reduce((sum, { weight }) => sum + weight, 0);
  if (total <= 0) throw new Error('MIX must give at least one kind a weight above 0.');
  const weightOf = (/** @type {string} */ name) => {
    const found = weights.find((w) => w.name === name);
    return found ? found.weight : 0;
  };
  const images = weightOf('image') > 0 ? [50, 120, 250, 500].map((kib) => pngPayload(kib * KIB, 'pool')) : [];
  const documents = weightOf('document') > 0 ? [pdfPayload(MIB, 'pool'), zipPayload(MIB, 'pool')] : [];
  /** @type {Record<'text' | 'image' | 'document' | 'large', (label: string) => Payload>} */
  const makers = {
    text: (label) => textPayload(between(KIB, 64 * KIB), label),
    image: (label) => Object.assign({}, pick(images), { name: `${label}.png` }),
    document: (label) => {
      const document = pick(documents);
      return Object.assign({}, document, { name: `${label}.${document.kind === 'pdf' ? 'pdf' : 'zip'}` });
    },
    large: (label) => largePayload(between(10 * MIB, 50 * MIB), label),
  };
  return (label) => {
    let roll = Math.random() * total;
    for (const { name, weight } of weights) {
      roll -= weight;
      if (roll < 0 && weight > 0) return makers[/** @type {keyof typeof makers} */ (name)](label);
    }
    return makers.text(label);
  };
}

/**
 * The mix the MIX variable names (`name:weight,...`), by default the realistic one above.
 * @returns {(label: string) => Payload}
 */
export function mixFromEnv() {
  return payloadMix(envWeights('MIX', 'text:70,image:20,document:8,large:2'));
}

/**
 * @template T
 * @param {T[]} items
 * @returns {T}
 */
function pick(items) {
  const item = items[Math.floor(Math.random() * items.length)];
  if (item === undefined) throw new Error('Nothing to pick from.');
  return item;
}
