// Decides a file's kind and content type from its first bytes. The client's declared type is ignored; the
// name's extension only breaks a tie between text formats the content leaves open (see core/textFormats.ts).
import { fileTypeFromBuffer } from 'file-type';
import { OLE2_CONTENT_TYPE, ole2ContentType } from './ole2Head.js';
import { FILE_KINDS, KINDS, type FileKind } from './results/index.js';
import { HEAD_BYTES } from './storage/index.js';
import { bomEncoding } from './text.js';
import { textFormatOf } from './textFormats.js';

export interface Sniffed {
  kind: FileKind;
  content_type: string;
}

// Formats whose first kilobytes may be plain ASCII: they must reach file-type even when they look like text.
const TEXT_LIKE_MAGIC = ['%PDF-', '%!PS', '{\\rtf'].map((magic) => Buffer.from(magic, 'latin1'));

/**
 * Text first: `file-type` reads UTF-16 text as MPEG audio, and most text has no magic number at all
 * (asking file-type about it only costs time on the upload path).
 */
export async function sniffKind(head: Buffer, filename: string): Promise<Sniffed> {
  const encoding = textEncoding(head);
  if (encoding && !TEXT_LIKE_MAGIC.some((magic) => head.subarray(0, magic.length).equals(magic)))
    return asText(head, encoding, filename);
  const detected = await fileTypeFromBuffer(head);
  if (detected) {
    const mime = detected.mime === OLE2_CONTENT_TYPE ? (ole2ContentType(head) ?? OLE2_CONTENT_TYPE) : detected.mime;
    return { kind: kindOfMime(mime), content_type: mime };
  }
  if (encoding) return asText(head, encoding, filename);
  return { kind: 'other', content_type: 'application/octet-stream' };
}

/** The kind that claims a content type file-type detected; `other` when none does. */
function kindOfMime(mime: string): FileKind {
  return FILE_KINDS.find((kind) => KINDS[kind].claims(mime)) ?? 'other';
}

/**
 * Text is of kind `text` whatever its format, SVG included: it is XML that browsers run scripts in, so it is
 * counted as text (never rasterized) and served as an attachment like every file. A head shorter than
 * HEAD_BYTES is the whole file; a longer file is judged by its head.
 */
function asText(head: Buffer, encoding: string, filename: string): Sniffed {
  const mime = textFormatOf(headText(head, encoding), head.length < HEAD_BYTES, filename);
  return { kind: 'text', content_type: encoding === 'unknown' ? mime : `${mime}; charset=${encoding}` };
}

/** The head as a string, without its BOM. Formats differ in ASCII only, so UTF-8 is read byte for byte (cheaper). */
function headText(head: Buffer, encoding: string): string {
  const bom = bomEncoding(head);
  const from = bom === 'utf-8' ? 3 : bom ? 2 : 0;
  if (encoding === 'utf-16le') return head.toString('utf16le', from);
  if (encoding === 'utf-16be')
    return Buffer.from(head.subarray(from, head.length - ((head.length - from) % 2)))
      .swap16()
      .toString('utf16le');
  return head.toString('latin1', from);
}

/**
 * The text encoding of `head` when it looks like text: `utf-8`, `utf-16le`, `utf-16be`, or `unknown`
 * for a legacy 8-bit encoding; undefined for binary data.
 */
function textEncoding(head: Buffer): string | undefined {
  if (head.length === 0) return undefined;
  const bom = bomEncoding(head);
  if (bom) return bom;
  const utf16 = utf16WithoutBom(head);
  if (utf16) return utf16;
  if (head.includes(0)) return undefined;
  if (controlRatio(head) > 0.02) return undefined;
  return isUtf8(head) ? 'utf-8' : 'unknown';
}

/** BOM-less UTF-16 of mostly Latin text: every other byte is zero. */
function utf16WithoutBom(head: Buffer): string | undefined {
  if (head.length < 4) return undefined;
  let evenZeros = 0;
  let oddZeros = 0;
  for (let i = 0; i + 1 < head.length; i += 2) {
    if (head[i] === 0) evenZeros++;
    if (head[i + 1] === 0) oddZeros++;
  }
  const pairs = Math.floor(head.length / 2);
  if (oddZeros > pairs * 0.6 && evenZeros < pairs * 0.05) return 'utf-16le';
  if (evenZeros > pairs * 0.6 && oddZeros < pairs * 0.05) return 'utf-16be';
  return undefined;
}

/** The C0 control bytes text may hold: tab, line feed, form feed, carriage return and escape. */
const TEXT_CONTROLS = new Uint8Array(0x20);
for (const byte of [0x09, 0x0a, 0x0c, 0x0d, 0x1b]) TEXT_CONTROLS[byte] = 1;

/** Share of the other C0 control bytes and DEL. An indexed loop: iterating the Buffer cost 10 times as much. */
function controlRatio(head: Buffer): number {
  let controls = 0;
  for (let i = 0; i < head.length; i++) {
    const byte = head[i]!;
    if ((byte < 0x20 && TEXT_CONTROLS[byte] === 0) || byte === 0x7f) controls++;
  }
  return controls / head.length;
}

/** Valid UTF-8, allowing a sequence cut off at the end of the head. */
function isUtf8(head: Buffer): boolean {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    decoder.decode(head, { stream: true });
    return true;
  } catch {
    return false;
  }
}
