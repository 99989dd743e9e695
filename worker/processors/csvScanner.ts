// A streaming CSV reader (RFC 4180 quoting) that counts records and keeps only the first few, to guess
// the delimiter and whether the first record is a header. Memory stays flat whatever the file size or
// the record width: fields past the kept ones are counted, never kept.
import { KEPT_NAME_CHARS, LISTED_COLUMNS, type CsvSummary } from '../../core/results/text.js';

const CSV_DELIMITERS = [',', ';', '\t', '|'] as const;

const SAMPLE_CHARS = 64 * 1024;
const SAMPLE_LINES = 20;
const KEPT_RECORDS = 50;
const KEPT_FIELDS = 256;
const KEPT_FIELD_CHARS = KEPT_NAME_CHARS;
const NUMBER = /^\s*[-+]?(\d+([.,]\d+)?|[.,]\d+)([eE][-+]?\d+)?\s*$/;

export class CsvScanner {
  private delimiter: string | null;
  private sample = '';
  private inQuotes = false;
  private quoteInQuotes = false;
  private fieldStarted = false;
  private recordStarted = false;
  private afterCr = false;
  private field = '';
  /** The kept fields of the record being read (none once KEPT_RECORDS are kept). */
  private fields: string[] = [];
  /** Fields of the record being read, kept or not. */
  private fieldCount = 0;
  /** Fields of the first record. */
  private columns = 0;
  private records = 0;
  private readonly kept: string[][] = [];
  /** A quoted field was still open at the end. */
  unterminatedQuote = false;

  /** `delimiter` when the format says (TSV); otherwise it is guessed from the first 64 KiB. */
  constructor(delimiter?: string) {
    this.delimiter = delimiter ?? null;
  }

  feed(text: string): void {
    if (this.delimiter !== null) return this.scan(text);
    this.sample += text;
    if (this.sample.length >= SAMPLE_CHARS) this.decideDelimiter();
  }

  end(): CsvSummary {
    if (this.delimiter === null) this.decideDelimiter();
    this.unterminatedQuote = this.inQuotes && !this.quoteInQuotes;
    if (this.recordStarted || this.fieldCount > 0) this.endRecord();
    const header = looksLikeHeader(this.kept);
    return {
      delimiter: this.delimiter!,
      columns: Math.max(1, this.columns),
      header,
      rows: this.records - (header ? 1 : 0),
      column_names: header ? this.kept[0]!.slice(0, LISTED_COLUMNS) : null,
    };
  }

  private decideDelimiter(): void {
    const lines = this.sample
      .replace(/"[^"]*"/g, '')
      .split(/\r\n|\n|\r/)
      .filter((line) => line.trim() !== '')
      .slice(0, SAMPLE_LINES);
    let best: { delimiter: string; score: number } = { delimiter: ',', score: 0 };
    for (const delimiter of CSV_DELIMITERS) {
      const counts = lines.map((line) => line.split(delimiter).length - 1);
      const first = counts[0] ?? 0;
      const score = first > 0 ? counts.filter((count) => count === first).length : 0;
      if (score > best.score) best = { delimiter, score };
    }
    this.delimiter = best.delimiter;
    const sample = this.sample;
    this.sample = '';
    this.scan(sample);
  }

  private scan(text: string): void {
    const delimiter = this.delimiter!;
    const keeping = () =>
      this.kept.length < KEPT_RECORDS && this.fieldCount < KEPT_FIELDS && this.field.length < KEPT_FIELD_CHARS;
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (this.inQuotes) {
        if (this.quoteInQuotes) {
          this.quoteInQuotes = false;
          if (c === '"') {
            if (keeping()) this.field += c;
            continue;
          }
          this.inQuotes = false;
        } else {
          if (c === '"') this.quoteInQuotes = true;
          else if (keeping()) this.field += c;
          continue;
        }
      }
      const crlf = this.afterCr && c === '\n';
      this.afterCr = c === '\r';
      if (crlf) continue;
      if (c === '"' && !this.fieldStarted) {
        this.inQuotes = true;
        this.fieldStarted = this.recordStarted = true;
      } else if (c === delimiter) {
        this.endField();
        this.recordStarted = true;
      } else if (c === '\n' || c === '\r') {
        if (this.recordStarted || this.fieldStarted) this.endRecord();
      } else {
        if (keeping()) this.field += c;
        this.fieldStarted = this.recordStarted = true;
      }
    }
  }

  private endField(): void {
    if (this.kept.length < KEPT_RECORDS && this.fieldCount < KEPT_FIELDS) this.fields.push(this.field);
    this.fieldCount++;
    this.field = '';
    this.fieldStarted = false;
  }

  private endRecord(): void {
    this.endField();
    if (this.records === 0) this.columns = this.fieldCount;
    this.records++;
    if (this.kept.length < KEPT_RECORDS) this.kept.push(this.fields);
    this.fields = [];
    this.fieldCount = 0;
    this.recordStarted = false;
  }
}

/**
 * The first record is a header when, column by column, it differs in type from the data below it
 * (text over numbers, or a different length over values of one length), as Python's csv.Sniffer guesses.
 */
function looksLikeHeader(records: string[][]): boolean {
  const [first, ...rest] = records;
  if (!first || rest.length === 0 || first.some((value) => value.trim() === '' || NUMBER.test(value))) return false;
  let votes = 0;
  first.forEach((name, column) => {
    const values = rest
      .map((record) => record[column])
      .filter((value): value is string => value !== undefined && value !== '');
    if (values.length === 0) return;
    if (values.every((value) => NUMBER.test(value))) votes++;
    else if (values.every((value) => value.length === values[0]!.length))
      votes += name.length === values[0]!.length ? -1 : 1;
  });
  return votes > 0;
}
