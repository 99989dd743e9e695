// Kind `pdf`, with pdf.js (Mozilla, Apache-2.0), pure JavaScript: page count, the document information,
// whether it is encrypted, and the first kilobyte of text. pdf.js reads the file by ranges, so a large
// PDF is never loaded whole; it is imported in the parser processes only. What it decodes (inflated
// streams) is bounded by PDF_MAX_DECODED_BYTES per document (see pdfDecodeBudget.ts).
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CommonResult } from '../../core/results/index.js';
import type { PdfResult } from '../../core/results/pdf.js';
import { truncateUtf8 } from '../../core/text.js';
import { withBlob, type BlobReader } from './blobSource.js';
import { analyzingProcessor } from './common.js';
import { DecodeBudget, loadBudgetedPdfjsWorker, withDecodeBudget } from './pdfDecodeBudget.js';
import { withRenderings } from '../renderers/index.js';
import { renderPdfFirstPage } from '../renderers/pdfPage.js';
import { ProcessingError, type Analyzed, type AnalysisInput } from './types.js';

type PdfFields = Omit<PdfResult, keyof CommonResult>;

const PDF_TEXT_BYTES = 1024;
/** Pages read for text at most: a PDF of blank pages must not make us walk all of them. */
const PDF_TEXT_PAGES = 20;

interface DocumentInfo {
  PDFFormatVersion?: string;
  Title?: unknown;
  Author?: unknown;
  Producer?: unknown;
  EncryptFilterName?: string | null;
}

// Character maps (CJK text) and the standard fonts' metrics ship with pdf.js; in Node they are read from disk.
const PDFJS_DIR = fileURLToPath(new URL('.', import.meta.resolve('pdfjs-dist/package.json')));
const PDFJS_DATA = {
  cMapUrl: path.join(PDFJS_DIR, 'cmaps/'),
  cMapPacked: true,
  standardFontDataUrl: path.join(PDFJS_DIR, 'standard_fonts/'),
  wasmUrl: path.join(PDFJS_DIR, 'wasm/'),
};

/** Loads pdf.js and its patched worker code in a parser process before its first PDF (see parserProcess.ts). */
export async function prepareParser(): Promise<void> {
  await loadBudgetedPdfjsWorker();
  await import('pdfjs-dist/legacy/build/pdf.mjs');
}

export async function analyzePdf({ source, size, limits }: AnalysisInput): Promise<Analyzed<PdfFields>> {
  await loadBudgetedPdfjsWorker();
  const budget = new DecodeBudget(limits.pdfMaxDecodedBytes);
  return withBlob(source, (reader) => withDecodeBudget(budget, () => readPdf(reader, size, budget)));
}

async function readPdf(reader: BlobReader, size: number, budget: DecodeBudget): Promise<Analyzed<PdfFields>> {
  const pdfjs = await import('pdfjs-dist/legacy/build/pdf.mjs');
  const ranges = new RangesFromReader(pdfjs, reader, size);
  const loading = pdfjs.getDocument({
    range: ranges.transport,
    ...PDFJS_DATA,
    disableStream: true,
    disableAutoFetch: true,
    verbosity: 0,
  });
  const { orFailedRead } = ranges;
  const overBudget = `decodes to more than ${sizeInWords(budget.limit)}, the limit of this service`;
  try {
    const document = await orFailedRead(loading.promise);
    const info = ((await orFailedRead(document.getMetadata())).info ?? {}) as DocumentInfo;
    let text = '';
    try {
      for (
        let number = 1;
        number <= Math.min(document.numPages, PDF_TEXT_PAGES) &&
        Buffer.byteLength(text) < PDF_TEXT_BYTES &&
        !budget.exceeded;
        number++
      ) {
        const content = await orFailedRead((await orFailedRead(document.getPage(number))).getTextContent());
        const pageText = content.items.map((item) => ('str' in item ? item.str : '')).join(' ');
        text = `${text} ${pageText}`.replace(/\s+/g, ' ').trim();
      }
    } catch (err) {
      // pdf.js skips or gives up on what it cannot decode; over the budget, the text read so far is kept.
      if (!budget.exceeded) throw err;
    }
    // What pdf.js could not read may have been skipped without a word.
    if (ranges.failure) throw ranges.failure;
    return {
      fields: {
        pdf_version: info.PDFFormatVersion ?? null,
        pages: document.numPages,
        title: textOrNull(info.Title),
        author: textOrNull(info.Author),
        producer: textOrNull(info.Producer),
        encrypted: Boolean(info.EncryptFilterName),
        text: budget.exceeded && text === '' ? null : truncateUtf8(text, PDF_TEXT_BYTES),
      },
      warnings: budget.exceeded ? [`The PDF's text was not fully extracted: its content ${overBudget}.`] : [],
    };
  } catch (err) {
    if (ranges.failure) throw ranges.failure;
    if ((err as Error)?.name === 'PasswordException') {
      return {
        fields: unreadable({ encrypted: true }),
        warnings: ['The PDF needs a password to open: its pages, information and text cannot be read.'],
      };
    }
    if (budget.exceeded) {
      // Its cross-reference or object streams alone are over the budget: nothing about it is known.
      return {
        fields: unreadable({ encrypted: false }),
        warnings: [`The PDF could not be opened: its structure ${overBudget}.`],
      };
    }
    throw new ProcessingError(
      'corrupt_file',
      `The file is not a readable PDF (${String((err as Error)?.message ?? err).split('\n')[0]}).`,
    );
  } finally {
    // Destroyed while it waits for a range, pdf.js rejects its own prefetches where nothing catches them, which kills
    // the process; left waiting, it keeps the document, until the parser process is replaced (see parsers.ts).
    if (!ranges.failure) await loading.destroy();
  }
}

type Pdfjs = typeof import('pdfjs-dist/legacy/build/pdf.mjs');

/**
 * pdf.js's range transport fed by `reader`: pdf.js asks for the ranges it needs (64 KiB chunks) and nothing else
 * (no stream, no prefetch). It cannot be told that a range failed (mozilla/pdf.js#9883) and would wait for it until
 * the deadline: every wait on pdf.js ends at the first failed read instead, and pdf.js gets nothing more.
 */
class RangesFromReader {
  readonly transport: InstanceType<Pdfjs['PDFDataRangeTransport']>;
  /** The first read that failed, if one did. */
  failure: Error | undefined;
  private readonly failed = Promise.withResolvers<never>();
  /** After a failure, or once pdf.js gave up on its requests. */
  private stopped = false;

  /** Bytes read beyond a request: doubled while pdf.js asks for the range right after the last one, else none. */
  private readAhead = 0;
  private lastEnd = -1;

  constructor(pdfjs: Pdfjs, reader: BlobReader, size: number) {
    this.transport = new pdfjs.PDFDataRangeTransport(size, null);
    this.transport.requestDataRange = (begin, requestedEnd) => {
      if (this.stopped) return;
      // pdf.js parses an object again from its start each time it meets a byte not yet read, so an object of n chunks
      // cost n re-parses of up to n chunks (a 1 MB string: 9 s). Reading ahead along such a walk makes it log n.
      this.readAhead =
        begin === this.lastEnd ? Math.min(MAX_READ_AHEAD_BYTES, Math.max(requestedEnd - begin, this.readAhead * 2)) : 0;
      const end = Math.min(size, requestedEnd + this.readAhead);
      this.lastEnd = end;
      const chunk = new Uint8Array(end - begin);
      reader
        .read(chunk, 0, chunk.length, begin)
        .then(({ bytesRead }) => {
          if (!this.stopped) this.transport.onDataRange(begin, chunk.subarray(0, bytesRead));
        })
        .catch((err: unknown) => {
          this.stopped = true;
          this.failure ??= err as Error;
          this.failed.reject(err);
        });
    };
    this.transport.abort = () => {
      this.stopped = true;
    };
    this.failed.promise.catch(() => undefined);
  }

  /** `work`, or the first failed read if it comes first. */
  orFailedRead = <T>(work: Promise<T>): Promise<T> => Promise.race([work, this.failed.promise]);
}

/** Sequential reads ahead grow to this; a multiple of pdf.js's 64 KiB chunks, as pdf.js needs. */
const MAX_READ_AHEAD_BYTES = 4 * 1024 * 1024;

/** 67108864 as "64 MiB", other sizes in bytes. */
const sizeInWords = (bytes: number): string =>
  bytes % (1024 * 1024) === 0 ? `${bytes / (1024 * 1024)} MiB` : `${bytes} bytes`;

/** The fields of a PDF that could not be opened: nothing about it is known but whether it is encrypted. */
const unreadable = ({ encrypted }: { encrypted: boolean }): PdfFields => ({
  pdf_version: null,
  pages: null,
  title: null,
  author: null,
  producer: null,
  encrypted,
  text: null,
});

const textOrNull = (value: unknown): string | null =>
  typeof value === 'string' && value.trim() !== '' ? value.trim() : null;

/** The analysis and, for a PDF that opened, its first page drawn (see renderers/pdfPage.ts). */
export async function analyzeAndRenderPdf(input: AnalysisInput): Promise<Analyzed<PdfFields>> {
  const analyzed = await analyzePdf(input);
  return analyzed.fields.pages ? withRenderings(analyzed, input, renderPdfFirstPage) : analyzed;
}

export const pdfProcessor = analyzingProcessor(import.meta.url, analyzeAndRenderPdf);
