// Facts about text as bytes, shared by the API (names, sniffing) and the worker (decoding, excerpts).

/** The longest prefix of `text` whose UTF-8 form fits in `maxBytes`, never splitting a character. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (Buffer.byteLength(text) <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const character of text) {
    bytes += Buffer.byteLength(character);
    if (bytes > maxBytes) break;
    end += character.length;
  }
  return text.slice(0, end);
}

export type BomEncoding = 'utf-8' | 'utf-16le' | 'utf-16be';

/** Bytes a byte-order mark needs to be told apart (FF FE 00 00 is UTF-32LE's, not UTF-16LE's). */
export const BOM_PROBE_BYTES = 4;

/** The encoding the byte-order mark at the start of `head` names, if it starts with one. */
export function bomEncoding(head: Buffer): BomEncoding | undefined {
  if (head[0] === 0xef && head[1] === 0xbb && head[2] === 0xbf) return 'utf-8';
  if (head[0] === 0xff && head[1] === 0xfe && !(head[2] === 0 && head[3] === 0)) return 'utf-16le';
  if (head[0] === 0xfe && head[1] === 0xff) return 'utf-16be';
  return undefined;
}
