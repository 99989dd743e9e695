// Decides a file's kind and content type from its first bytes. The client's declared type is ignored;
// its extension only picks a text subtype (CSV, JSON, ...) once the bytes are known to be text.
import { fileTypeFromBuffer } from 'file-type';
import type { FileKind } from './fileRecord.js';
import { bomEncoding } from './text.js';

export interface Sniffed {
  kind: FileKind;
  content_type: string;
}

// Archives and compressed streams as file-type names them, each with the format name results report (zip-based
// packages such as jar and apk are read as zips). Zip-based documents (docx, odt, epub) are documents, not
// archives: they stay `other`.
export const ARCHIVE_FORMATS: Readonly<Record<string, string>> = {
  'application/zip': 'zip',
  'application/java-archive': 'zip',
  'application/vnd.android.package-archive': 'zip',
  'application/x-xpinstall': 'zip',
  'application/x-tar': 'tar',
  'application/gzip': 'gzip',
  'application/x-bzip2': 'bzip2',
  'application/x-xz': 'xz',
  'application/zstd': 'zstd',
  'application/x-lzip': 'lzip',
  'application/x-lz4': 'lz4',
  'application/x-compress': 'compress',
  'application/x-7z-compressed': '7z',
  'application/x-rar-compressed': 'rar',
  'application/vnd.rar': 'rar',
  'application/vnd.ms-cab-compressed': 'vnd.ms-cab-compressed',
  'application/x-cpio': 'cpio',
  'application/x-unix-archive': 'unix-archive',
  'application/x-deb': 'deb',
  'application/x-rpm': 'rpm',
  'application/x-arj': 'arj',
  'application/x-lzh-compressed': 'lzh-compressed',
  'application/x-ace-compressed': 'ace-compressed',
};

/** Media containers that file-type names under `application/`. */
const MEDIA: Record<string, FileKind> = {
  'application/ogg': 'audio',
  'application/vnd.ms-asf': 'video',
  'application/mxf': 'video',
  'application/vnd.rn-realmedia': 'video',
};

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

export function kindOfMime(mime: string): FileKind {
  if (mime.startsWith('image/')) return 'image';
  if (mime.startsWith('audio/')) return 'audio';
  if (mime.startsWith('video/')) return 'video';
  if (mime === 'application/pdf') return 'pdf';
  if (Object.hasOwn(ARCHIVE_FORMATS, mime)) return 'archive';
  return MEDIA[mime] ?? 'other';
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
export function textEncoding(head: Buffer): string | undefined {
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
