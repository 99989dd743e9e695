// Decides a file's kind and content type from its first bytes. The client's declared type is ignored;
// its extension only picks a text subtype (CSV, JSON, ...) once the bytes are known to be text.
import { fileTypeFromBuffer } from 'file-type';
import { FILE_KINDS, KINDS, type FileKind } from './results/index.js';
import { bomEncoding } from './text.js';

export interface Sniffed {
  kind: FileKind;
  content_type: string;
}

const TEXT_SUBTYPES: Record<string, string> = {
  csv: 'text/csv',
  tsv: 'text/tab-separated-values',
  json: 'application/json',
  md: 'text/markdown',
  markdown: 'text/markdown',
  html: 'text/html',
  htm: 'text/html',
  xml: 'application/xml',
  svg: 'image/svg+xml',
  yaml: 'application/yaml',
  yml: 'application/yaml',
  js: 'text/javascript',
  css: 'text/css',
};

// Formats whose first kilobytes may be plain ASCII: they must reach file-type even when they look like text.
const TEXT_LIKE_MAGIC = ['%PDF-', '%!PS', '{\\rtf'].map((magic) => Buffer.from(magic, 'latin1'));

/**
 * Text first: `file-type` reads UTF-16 text as MPEG audio, and most text has no magic number at all
 * (asking file-type about it only costs time on the upload path).
 */
export async function sniffKind(head: Buffer, filename: string): Promise<Sniffed> {
  const encoding = textEncoding(head);
  if (encoding && !TEXT_LIKE_MAGIC.some((magic) => head.subarray(0, magic.length).equals(magic)))
    return asText(encoding, filename);
  const detected = await fileTypeFromBuffer(head);
  if (detected) return { kind: kindOfMime(detected.mime), content_type: detected.mime };
  if (encoding) return asText(encoding, filename);
  return { kind: 'other', content_type: 'application/octet-stream' };
}

/** The kind that claims a content type file-type detected; `other` when none does. */
function kindOfMime(mime: string): FileKind {
  return FILE_KINDS.find((kind) => KINDS[kind].claims(mime)) ?? 'other';
}

function asText(encoding: string, filename: string): Sniffed {
  const extension = /\.([a-z0-9]{1,10})$/i.exec(filename)?.[1]?.toLowerCase() ?? '';
  const mime = TEXT_SUBTYPES[extension] ?? 'text/plain';
  return { kind: 'text', content_type: encoding === 'unknown' ? mime : `${mime}; charset=${encoding}` };
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

/** Share of C0 control bytes other than tab, line feed, form feed, carriage return and escape. */
function controlRatio(head: Buffer): number {
  let controls = 0;
  for (const byte of head) {
    if ((byte < 0x20 && ![0x09, 0x0a, 0x0c, 0x0d, 0x1b].includes(byte)) || byte === 0x7f) controls++;
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
