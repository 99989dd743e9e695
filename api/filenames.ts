import { truncateUtf8 } from '../core/text.js';

const MAX_NAME_BYTES = 255;

// C0 and C1 controls, DEL, and the invisible bidirectional and zero-width marks used to disguise extensions.
// eslint-disable-next-line no-control-regex -- control characters are what it removes
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

/**
 * The client's filename reduced to a safe base name: no directories, no control or bidi characters,
 * at most 255 bytes of UTF-8 (cut on a character boundary, keeping the extension), never empty.
 */
export function safeFilename(raw: string | undefined): string {
  const base = (raw ?? '').toWellFormed().normalize('NFC').split(/[/\\]/).pop() ?? '';
  const cleaned = base
    .replace(INVISIBLE, '')
    .trim()
    .replace(/[. ]+$/, '');
  if (cleaned === '' || /^\.+$/.test(cleaned)) return 'file';
  return truncateKeepingExtension(cleaned, MAX_NAME_BYTES);
}

/** Truncated to `maxBytes` of UTF-8, keeping a short extension whole. */
function truncateKeepingExtension(name: string, maxBytes: number): string {
  if (Buffer.byteLength(name) <= maxBytes) return name;
  const extension = /\.[^.]{1,16}$/.exec(name)?.[0] ?? '';
  const stem = name.slice(0, name.length - extension.length);
  return truncateUtf8(stem, maxBytes - Buffer.byteLength(extension)) + extension;
}
