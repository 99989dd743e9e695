// Kind `text`: decodes the bytes as a stream (a 100 MB file never sits in memory whole) and counts
// lines, words, characters and line endings; CSV and JSON get a summary of their own on the same pass.
import type { CommonResult } from '../../core/results/index.js';
import { BOM_PROBE_BYTES, bomEncoding } from '../../core/text.js';
import type { LineEndings, TextEncoding, TextResult } from '../../core/results/text.js';
import { withBlob } from './blobSource.js';
import { analyzingProcessor } from './common.js';
import { CsvScanner } from './csvScanner.js';
import { JsonScanner } from './jsonScanner.js';
import type { Analyzed, AnalysisInput } from './types.js';

type TextFields = Omit<TextResult, keyof CommonResult>;

/** A fatal UTF-8 decoder stopped: the bytes are not UTF-8 after all (the upload only saw the head). */
class NotUtf8Error extends Error {}

export async function analyzeText({ source, contentType, bytes }: AnalysisInput): Promise<Analyzed<TextFields>> {
  if (bytes) return analyzeChunks(() => [bytes], bytes, contentType);
  return withBlob(source, async (reader) => {
    const head = Buffer.alloc(BOM_PROBE_BYTES);
    const { bytesRead } = await reader.read(head, 0, head.length, 0);
    return analyzeChunks(() => reader.stream() as AsyncIterable<Buffer>, head.subarray(0, bytesRead), contentType);
  });
}

/** Scans the text `chunks` gives (once more as windows-1252 when it turns out not to be UTF-8); `head` is its beginning. */
async function analyzeChunks(
  chunks: () => AsyncIterable<Buffer> | Iterable<Buffer>,
  head: Buffer,
  contentType: string,
): Promise<Analyzed<TextFields>> {
  const { encoding: declared, bom } = encodingOf(head, contentType);
  const warnings: string[] = [];
  if (declared === 'windows-1252') warnings.push(LEGACY_WARNING);
  try {
    return { fields: await scan(chunks(), contentType, declared, bom, warnings), warnings };
  } catch (err) {
    if (!(err instanceof NotUtf8Error)) throw err;
    // Start over: the counts so far were made on a wrong decoding.
    const retryWarnings = [LEGACY_WARNING];
    return { fields: await scan(chunks(), contentType, 'windows-1252', bom, retryWarnings), warnings: retryWarnings };
  }
}

const LEGACY_WARNING =
  'The text is not valid UTF-8 or UTF-16; it was read as windows-1252, a guess for legacy 8-bit text.';

/** The BOM decides; without one, the charset the upload sniffed from the head (none means legacy 8-bit). */
function encodingOf(head: Buffer, contentType: string): { encoding: TextEncoding; bom: boolean } {
  const bom = bomEncoding(head);
  if (bom) return { encoding: bom, bom: true };
  const charset = /;\s*charset=([\w-]+)/i.exec(contentType)?.[1]?.toLowerCase();
  const encoding: TextEncoding =
    charset === 'utf-8' || charset === 'utf-16le' || charset === 'utf-16be' ? charset : 'windows-1252';
  return { encoding, bom: false };
}

async function scan(
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
  contentType: string,
  encoding: TextEncoding,
  bom: boolean,
  warnings: string[],
): Promise<TextFields> {
  const decoder = new TextDecoder(encoding, { fatal: encoding === 'utf-8' });
  const counts = new TextCounts();
  const mime = contentType.split(';')[0]!.trim();
  const csv =
    mime === 'text/csv' ? new CsvScanner() : mime === 'text/tab-separated-values' ? new CsvScanner('\t') : null;
  const json = mime === 'application/json' ? new JsonScanner() : null;
  const feed = (text: string) => {
    counts.feed(text);
    csv?.feed(text);
    json?.feed(text);
  };
  for await (const chunk of chunks) {
    try {
      feed(decoder.decode(chunk, { stream: true }));
    } catch {
      throw new NotUtf8Error();
    }
  }
  try {
    feed(decoder.decode());
  } catch {
    // Only an incomplete sequence is left at the end: the file was cut inside a character.
    warnings.push('The text ends in the middle of a UTF-8 character; the file may be truncated.');
  }
  const csvSummary = csv?.end() ?? null;
  if (csv?.unterminatedQuote) warnings.push('The CSV ends inside a quoted field; the file may be truncated.');
  const jsonSummary = json?.end() ?? null;
  if (jsonSummary && !jsonSummary.valid)
    warnings.push(`The file was sniffed as JSON but is not valid JSON (${jsonSummary.error})`);
  return { encoding, bom, ...counts.summary(), csv: csvSummary, json: jsonSummary };
}

/** Unicode White_Space, as code units. */
const isSpace = (code: number): boolean =>
  (code >= 0x09 && code <= 0x0d) ||
  code === 0x20 ||
  code === 0x85 ||
  code === 0xa0 ||
  code === 0x1680 ||
  (code >= 0x2000 && code <= 0x200a) ||
  code === 0x2028 ||
  code === 0x2029 ||
  code === 0x202f ||
  code === 0x205f ||
  code === 0x3000;

/** Line, word, character and line-ending counts, carried across chunks. */
class TextCounts {
  private characters = 0;
  private words = 0;
  private breaks = 0;
  private lf = 0;
  private crlf = 0;
  private cr = 0;
  private inWord = false;
  private afterCr = false;
  private endsWithBreak = false;

  feed(text: string): void {
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      // A low surrogate completes a character already counted.
      if (code < 0xdc00 || code > 0xdfff) this.characters++;
      if (code === 0x0a) {
        if (this.afterCr) {
          this.cr--;
          this.crlf++;
        } else {
          this.lf++;
          this.breaks++;
        }
      } else if (code === 0x0d) {
        this.cr++;
        this.breaks++;
      }
      this.afterCr = code === 0x0d;
      this.endsWithBreak = code === 0x0a || code === 0x0d;
      if (isSpace(code)) {
        this.inWord = false;
      } else if (!this.inWord) {
        this.inWord = true;
        this.words++;
      }
    }
  }

  summary(): Pick<TextFields, 'lines' | 'words' | 'characters' | 'line_endings'> {
    const kinds: Array<[LineEndings, number]> = [
      ['lf', this.lf],
      ['crlf', this.crlf],
      ['cr', this.cr],
    ];
    const present = kinds.filter(([, count]) => count > 0);
    return {
      lines: this.breaks + (this.characters > 0 && !this.endsWithBreak ? 1 : 0),
      words: this.words,
      characters: this.characters,
      line_endings: present.length === 0 ? 'none' : present.length === 1 ? present[0]![0] : 'mixed',
    };
  }
}

/**
 * Up to here a text is analysed inline. The slowest scan (JSON) takes about 0.05 ms per KiB on the
 * benchmark machine, so an inline file holds the event loop for under a millisecond.
 */
export const TEXT_INLINE_MAX_BYTES = 16 * 1024;

export const textProcessor = analyzingProcessor(import.meta.url, analyzeText, {
  inlineMaxBytes: TEXT_INLINE_MAX_BYTES,
});
