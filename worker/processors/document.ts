// Kind `document`: an office document's metadata, read by our own small readers from the few parts that hold it
// (OOXML docProps, ODF meta.xml, the OLE2 SummaryInformation stream, RTF's \info group), never by an office
// suite. Nothing is rendered or run. XML parts are read without DTDs, each capped in size as it is inflated.
import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { DOCUMENT_CONTENT_TYPES, type DocumentFormat, type DocumentResult } from '../../core/results/document.js';
import type { CommonResult } from '../../core/results/index.js';
import type { BlobSource } from '../../core/storage/index.js';
import { WindowedReader } from './archive.js';
import { isReadFailure, withBlob } from './blobSource.js';
import { withRenderings } from '../renderers/index.js';
import { renderOfficeFirstPage } from '../renderers/office.js';
import { analyzingProcessor, readBytes, WindowedFile } from './common.js';
import { CompoundFile, readPropertySet, type DirectoryEntry } from './compoundFile.js';
import { ProcessingError, type Analyzed, type AnalysisInput } from './types.js';

type DocumentFields = Omit<DocumentResult, keyof CommonResult>;
type Counts = Pick<DocumentFields, 'title' | 'author' | 'pages' | 'sheets' | 'slides' | 'words' | 'macros'>;

/** A metadata part is a few kilobytes; one that inflates past this is a bomb, not metadata. */
const PART_MAX_BYTES = 1024 * 1024;
/** An office package has tens of parts; walking a directory of more only costs time. */
const MAX_PARTS = 10_000;
/** RTF keeps its \info group after the font and style tables, near the start. */
const RTF_HEAD_BYTES = 1024 * 1024;
/** SummaryInformation holds a few properties, and PowerPoint's a thumbnail too: hundreds of kilobytes. */
const PROPERTY_SET_MAX_BYTES = 4 * 1024 * 1024;

const OLE2 = new Set<DocumentFormat>(['doc', 'xls', 'ppt']);

const NO_COUNTS: Counts = {
  title: null,
  author: null,
  pages: null,
  sheets: null,
  slides: null,
  words: null,
  macros: false,
};

export async function analyzeDocument({ source, contentType, size }: AnalysisInput): Promise<Analyzed<DocumentFields>> {
  const format = DOCUMENT_CONTENT_TYPES[contentType];
  if (!format) throw new ProcessingError('unsupported_format', `${contentType} is not a document format read here.`);
  let fields: DocumentFields;
  if (format === 'rtf') fields = { format, ...readRtf(await readBytes(source, RTF_HEAD_BYTES)) };
  // The directory tells the format, whatever the head showed (core/ole2Head.ts).
  else if (OLE2.has(format)) fields = await readOle2(source, size);
  else fields = { format, ...(await readPackage(source, size, format)) };
  const warnings = fields.macros ? ['The document carries macros; they were not run.'] : [];
  return { fields, warnings };
}

// ---- Zip packages: OOXML and ODF ----

const OOXML = new Set<DocumentFormat>(['docx', 'xlsx', 'pptx', 'docm', 'xlsm', 'pptm']);
/** Where a package keeps macros: an OOXML VBA project, ODF Basic or script libraries. */
const OOXML_MACROS = /(^|\/)vbaProject\.bin$/i;
const ODF_MACROS = /^(Basic|Scripts)\/.+/;
const OOXML_SLIDE = /^ppt\/slides\/slide\d+\.xml$/;

function readPackage(source: BlobSource, size: number, format: DocumentFormat): Promise<Counts> {
  return withBlob(source, async (reader) => {
    const zip = await yauzl
      .fromRandomAccessReaderPromise(new WindowedReader(new WindowedFile(reader)), size, {
        lazyEntries: true,
        autoClose: false,
        validateEntrySizes: false,
      })
      .catch((err: unknown) => {
        throw asCorrupt(err);
      });
    const { parts, names } = await listParts(zip);
    const read = (name: string) => readPart(zip, parts.get(name), name);
    return OOXML.has(format) ? readOoxml(format, read, names) : readOdf(format, read, parts, names);
  });
}

/** Every entry name, and the entries themselves by name (the last wins, as in the central directory). */
async function listParts(zip: yauzl.ZipFile): Promise<{ parts: Map<string, yauzl.Entry>; names: string[] }> {
  const parts = new Map<string, yauzl.Entry>();
  const names: string[] = [];
  await new Promise<void>((resolve, reject) => {
    zip.on('entry', (entry: yauzl.Entry) => {
      if (names.length >= MAX_PARTS) {
        reject(new ProcessingError('too_complex', `The document has more than ${MAX_PARTS} parts.`));
        return;
      }
      parts.set(entry.fileName, entry);
      names.push(entry.fileName);
      zip.readEntry();
    });
    zip.once('end', resolve);
    zip.once('error', (err: unknown) => reject(asCorrupt(err)));
    zip.readEntry();
  });
  return { parts, names };
}

type ReadPart = (name: string) => Promise<string | null>;

async function readOoxml(format: DocumentFormat, read: ReadPart, names: string[]): Promise<Counts> {
  const core = await read('docProps/core.xml');
  const app = await read('docProps/app.xml');
  const workbook = format.startsWith('xls') ? await read('xl/workbook.xml') : null;
  return {
    title: elementText(core, 'title'),
    author: elementText(core, 'creator'),
    pages: integer(elementText(app, 'Pages')),
    sheets: workbook === null ? null : countElements(workbook, 'sheet'),
    // LibreOffice leaves Slides out of app.xml: the slide parts, listed in the directory, count them as well.
    slides: format.startsWith('ppt')
      ? (integer(elementText(app, 'Slides')) ?? names.filter((name) => OOXML_SLIDE.test(name)).length)
      : null,
    words: integer(elementText(app, 'Words')),
    macros: format.endsWith('m') || names.some((name) => OOXML_MACROS.test(name)),
  };
}

async function readOdf(
  format: DocumentFormat,
  read: ReadPart,
  parts: Map<string, yauzl.Entry>,
  names: string[],
): Promise<Counts> {
  const meta = await read('meta.xml');
  const statistic = openingTag(meta, 'document-statistic');
  // Counting the slides means reading the content: only when it is small enough to be cheap.
  const content = parts.get('content.xml');
  const slides =
    format === 'odp' && content && content.uncompressedSize <= PART_MAX_BYTES
      ? countElements((await read('content.xml')) ?? '', 'page')
      : null;
  return {
    title: elementText(meta, 'title'),
    author: elementText(meta, 'initial-creator') ?? elementText(meta, 'creator'),
    pages: format === 'odt' ? integer(attribute(statistic, 'page-count')) : null,
    sheets: format === 'ods' ? integer(attribute(statistic, 'table-count')) : null,
    slides,
    words: format === 'ods' ? null : integer(attribute(statistic, 'word-count')),
    macros: names.some((name) => ODF_MACROS.test(name)),
  };
}

/**
 * A part's text, or null when the package has no such part. Inflating stops at PART_MAX_BYTES whatever size
 * the entry declares; a part that goes past it fails the file, as does a part with a DTD.
 */
async function readPart(zip: yauzl.ZipFile, entry: yauzl.Entry | undefined, name: string): Promise<string | null> {
  if (!entry) return null;
  const tooLarge = () =>
    new ProcessingError(
      'too_complex',
      `The document's ${name} inflates to more than ${PART_MAX_BYTES} bytes, far more than metadata takes: it was not read.`,
    );
  if (entry.uncompressedSize > PART_MAX_BYTES) throw tooLarge();
  const stream = await new Promise<Readable>((resolve, reject) =>
    zip.openReadStream(entry, (err, opened) => (err ? reject(asCorrupt(err)) : resolve(opened))),
  );
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      total += chunk.length;
      if (total > PART_MAX_BYTES) throw tooLarge();
      chunks.push(chunk);
    }
  } catch (err) {
    throw asCorrupt(err);
  } finally {
    stream.destroy();
  }
  const xml = Buffer.concat(chunks).toString('utf8');
  refuseDtd(xml, name);
  return xml;
}

// ---- XML, without a parser: the few elements and attributes wanted, with no DTD to expand ----

/**
 * OOXML and ODF parts never declare a DTD. One that does is refused rather than expanded: entities defined
 * in terms of each other ("billion laughs") would grow a kilobyte into gigabytes.
 */
function refuseDtd(xml: string, name: string): void {
  if (/<!(DOCTYPE|ENTITY)/i.test(xml))
    throw new ProcessingError(
      'corrupt_file',
      `The document's ${name} declares a DTD, which office documents never do; it was not expanded.`,
    );
}

/** An optional namespace prefix: only local names are matched (`dc:title`, `title`). */
const PREFIX = '(?:[A-Za-z_][\\w.-]*:)?';

/** The text of the first element named `local` (any prefix), entities decoded; null when absent or empty. */
function elementText(xml: string | null, local: string): string | null {
  if (xml === null) return null;
  const match = new RegExp(`<${PREFIX}${local}(?:\\s[^>]*)?>([^<]*)</${PREFIX}${local}>`).exec(xml);
  const text = match ? decodeXmlText(match[1]!).trim() : '';
  return text === '' ? null : text;
}

/** The first opening tag of an element named `local`, attributes and all. */
function openingTag(xml: string | null, local: string): string | null {
  if (xml === null) return null;
  return new RegExp(`<${PREFIX}${local}(?=[\\s/>])[^>]*>`).exec(xml)?.[0] ?? null;
}

function attribute(tag: string | null, local: string): string | null {
  if (tag === null) return null;
  const match = new RegExp(`\\s${PREFIX}${local}\\s*=\\s*("([^"]*)"|'([^']*)')`).exec(tag);
  return match ? decodeXmlText(match[2] ?? match[3]!) : null;
}

function countElements(xml: string, local: string): number {
  return xml.match(new RegExp(`<${PREFIX}${local}(?=[\\s/>])`, 'g'))?.length ?? 0;
}

const XML_ENTITIES: Readonly<Record<string, string>> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

/** The predefined entities and character references: with no DTD, there are no others. */
function decodeXmlText(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (whole, name: string) => {
    if (!name.startsWith('#')) return XML_ENTITIES[name] ?? whole;
    const code = name[1] === 'x' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
    return code <= 0x10ffff ? String.fromCodePoint(code) : '\ufffd';
  });
}

/** A count as a program wrote it: digits only, and within what a number holds exactly. */
function integer(text: string | null): number | null {
  if (text === null || !/^\s*\d{1,15}\s*$/.test(text)) return null;
  return Number(text);
}

// ---- OLE2: .doc, .xls, .ppt ----

const OLE2_FORMATS: Readonly<Record<string, DocumentFormat>> = {
  WordDocument: 'doc',
  Workbook: 'xls',
  Book: 'xls',
  'PowerPoint Document': 'ppt',
};
/** Where Word (Macros) and Excel (_VBA_PROJECT_CUR) keep a VBA project; `VBA` is its storage inside either. */
const OLE2_MACRO_STORAGES = new Set(['Macros', '_VBA_PROJECT_CUR', 'VBA']);

const PIDSI_TITLE = 2;
const PIDSI_AUTHOR = 4;
const PIDSI_PAGECOUNT = 14;
const PIDSI_WORDCOUNT = 15;
const PIDDSI_SLIDECOUNT = 7;

function readOle2(source: BlobSource, size: number): Promise<DocumentFields> {
  return withBlob(source, async (reader) => {
    const compound = await CompoundFile.open(reader, size);
    const format = compound.entries.map((entry) => OLE2_FORMATS[entry.name]).find(Boolean);
    if (!format)
      throw new ProcessingError(
        'unsupported_format',
        'The compound file looked like a Word, Excel or PowerPoint document, but its directory has none of their streams.',
      );
    const properties = async (name: string) => {
      const entry = compound.entries.find((candidate: DirectoryEntry) => candidate.name === name);
      return entry ? readPropertySet(await compound.read(entry, PROPERTY_SET_MAX_BYTES)) : new Map();
    };
    const summary = await properties('\x05SummaryInformation');
    const documentSummary = format === 'ppt' ? await properties('\x05DocumentSummaryInformation') : new Map();
    return {
      format,
      title: text(summary.get(PIDSI_TITLE)),
      author: text(summary.get(PIDSI_AUTHOR)),
      pages: format === 'doc' ? count(summary.get(PIDSI_PAGECOUNT)) : null,
      sheets: null,
      slides: format === 'ppt' ? count(documentSummary.get(PIDDSI_SLIDECOUNT)) : null,
      words: format === 'xls' ? null : count(summary.get(PIDSI_WORDCOUNT)),
      macros: compound.entries.some((entry) => OLE2_MACRO_STORAGES.has(entry.name)),
    };
  });
}

const text = (value: unknown): string | null =>
  typeof value === 'string' && value.trim() !== '' ? value.trim() : null;
const count = (value: unknown): number | null => (typeof value === 'number' && value >= 0 ? value : null);

// ---- RTF ----

/** The \info group's title, author and counts, from the head of the file; null where it says nothing. */
function readRtf(head: Buffer): Counts {
  const rtf = head.toString('latin1');
  if (!rtf.startsWith('{\\rtf'))
    throw new ProcessingError('corrupt_file', 'The file is not RTF: it does not start with {\\rtf.');
  const info = infoGroup(rtf);
  const field = (word: string) => {
    // An escape (a backslash and the character after it) or any character but a brace or a backslash: one way to
    // match each, so a group that never closes costs a linear scan, not a backtracking blow-up.
    const match = new RegExp(`\\{\\\\${word}(?![a-zA-Z])[ ]?((?:\\\\[\\s\\S]|[^{}\\\\])*)\\}`).exec(info);
    return match ? rtfText(match[1]!) : null;
  };
  const number = (word: string) => integer(new RegExp(`\\\\${word}(\\d+)`).exec(info)?.[1] ?? null);
  return {
    ...NO_COUNTS,
    title: field('title'),
    author: field('author'),
    pages: number('nofpages'),
    words: number('nofwords'),
  };
}

/** The text of the `{\info ...}` group, up to its closing brace or the end of what was read. */
function infoGroup(rtf: string): string {
  const start = rtf.indexOf('{\\info');
  if (start < 0) return '';
  let depth = 0;
  for (let at = start; at < rtf.length; at++) {
    const char = rtf[at];
    if (char === '\\') at++;
    else if (char === '{') depth++;
    else if (char === '}' && --depth === 0) return rtf.slice(start, at + 1);
  }
  return rtf.slice(start);
}

const WINDOWS_1252 = new TextDecoder('windows-1252');

/** Escaped symbols stand in as private-use characters while control words are taken out. */
const ESCAPED: Readonly<Record<string, string>> = { '\\': '\ue000', '{': '\ue001', '}': '\ue002' };
const UNESCAPED: Readonly<Record<string, string>> = { '\ue000': '\\', '\ue001': '{', '\ue002': '}' };

/**
 * A destination's plain text: `\'hh` bytes (in the usual ANSI code page, 1252), `\uN` characters followed by
 * their one-character fallback, escaped braces and backslashes; other control words dropped.
 */
function rtfText(raw: string): string | null {
  const decoded = raw
    .replace(/\\([\\{}])/g, (_, symbol: string) => ESCAPED[symbol]!)
    .replace(/\\u(-?\d+) ?(\\'[0-9a-fA-F]{2}|[^\\{}])?/g, (_, code: string) =>
      String.fromCharCode(Number(code) & 0xffff),
    )
    .replace(/\\'([0-9a-fA-F]{2})/g, (_, hex: string) => WINDOWS_1252.decode(Buffer.from([parseInt(hex, 16)])))
    .replace(/\\[a-zA-Z]+-?\d* ?/g, '')
    .replace(/[\r\n]/g, '')
    .replace(/[\ue000-\ue002]/g, (symbol) => UNESCAPED[symbol]!)
    .trim();
  return decoded === '' ? null : decoded;
}

function asCorrupt(err: unknown): Error {
  if (err instanceof ProcessingError || isReadFailure(err)) return err as Error;
  return new ProcessingError(
    'corrupt_file',
    `The file is not a readable office document (${String((err as Error)?.message ?? err)}).`,
  );
}

/** The analysis and, where the worker has LibreOffice, the first page drawn (see renderers/office.ts). */
export async function analyzeAndRenderDocument(input: AnalysisInput): Promise<Analyzed<DocumentFields>> {
  const analyzed = await analyzeDocument(input);
  return input.tools?.office ? withRenderings(analyzed, input, renderOfficeFirstPage) : analyzed;
}

export const documentProcessor = analyzingProcessor(import.meta.url, analyzeAndRenderDocument);
