// Office documents for the tests: real ones converted by LibreOffice from flat ODF we write (with a known title
// and author), and small OLE2 compound files and property sets built here, byte by byte, to be damaged at will.
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { zip, type ZipEntry } from './fixtures.js';
import { run } from './tools.js';

const NAMESPACES =
  'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" ' +
  'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" ' +
  'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" ' +
  'xmlns:draw="urn:oasis:names:tc:opendocument:xmlns:drawing:1.0" ' +
  'xmlns:svg="urn:oasis:names:tc:opendocument:xmlns:svg-compatible:1.0" ' +
  'xmlns:dc="http://purl.org/dc/elements/1.1/" ' +
  'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0"';

/** A flat ODF document (one XML file, which LibreOffice opens) with this title and author. */
function flatOdf(mimetype: string, title: string, author: string, body: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n<office:document ${NAMESPACES} office:version="1.3" ` +
    `office:mimetype="application/vnd.oasis.opendocument.${mimetype}"><office:meta><dc:title>${title}</dc:title>` +
    `<meta:initial-creator>${author}</meta:initial-creator><dc:creator>${author}</dc:creator></office:meta>` +
    `<office:body>${body}</office:body></office:document>\n`
  );
}

/** What the sources say: the text has 7 words on one page, the spreadsheet 2 sheets, the presentation 3 slides. */
export const SOURCES = {
  text: {
    title: 'Quarterly Report',
    author: 'Ada Lovelace',
    file: 'report.fodt',
    xml: flatOdf(
      'text',
      'Quarterly Report',
      'Ada Lovelace',
      '<office:text><text:p>One two three four five six seven.</text:p></office:text>',
    ),
  },
  spreadsheet: {
    title: 'Budget 2027',
    author: 'Alan Turing',
    file: 'budget.fods',
    xml: flatOdf(
      'spreadsheet',
      'Budget 2027',
      'Alan Turing',
      '<office:spreadsheet>' +
        ['Income', 'Costs']
          .map(
            (name) =>
              `<table:table table:name="${name}"><table:table-row><table:table-cell office:value-type="string">` +
              `<text:p>${name}</text:p></table:table-cell></table:table-row></table:table>`,
          )
          .join('') +
        '</office:spreadsheet>',
    ),
  },
  presentation: {
    title: 'Launch Plan',
    author: 'Grace Hopper',
    file: 'plan.fodp',
    xml: flatOdf(
      'presentation',
      'Launch Plan',
      'Grace Hopper',
      '<office:presentation>' +
        ['First', 'Second', 'Third']
          .map(
            (name) =>
              `<draw:page draw:name="${name}"><draw:frame svg:x="1cm" svg:y="1cm" svg:width="10cm" ` +
              `svg:height="2cm"><draw:text-box><text:p>${name} slide</text:p></draw:text-box></draw:frame></draw:page>`,
          )
          .join('') +
        '</office:presentation>',
    ),
  },
} as const;

export type SourceName = keyof typeof SOURCES;

/**
 * Each source converted by `soffice` to each of its formats, as bytes by "source.format". LibreOffice runs with a
 * profile of its own: with a shared one, a second soffice hands its work to the first and may answer before it is done.
 */
export async function convertedDocuments(
  soffice: string,
  formats: Record<SourceName, readonly string[]>,
): Promise<Map<string, Buffer>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'documents-'));
  try {
    const profile = pathToFileURL(path.join(dir, 'profile')).href;
    const out = path.join(dir, 'out');
    await mkdir(out);
    const converted = new Map<string, Buffer>();
    for (const [name, source] of Object.entries(SOURCES) as Array<[SourceName, (typeof SOURCES)[SourceName]]>) {
      const input = path.join(dir, source.file);
      await writeFile(input, source.xml);
      for (const format of formats[name]) {
        const args = ['--headless', `-env:UserInstallation=${profile}`, '--convert-to', format, '--outdir', out, input];
        await run(soffice, args, { timeout: 60_000 });
        const output = path.join(out, `${path.parse(source.file).name}.${format}`);
        converted.set(`${name}.${format}`, await readFile(output));
      }
    }
    return converted;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

// ---- OLE2 compound files (MS-CFB, version 3: 512-byte sectors) ----

const SECTOR = 512;
const END_OF_CHAIN = 0xfffffffe;
const FREE_SECT = 0xffffffff;
const FAT_SECT = 0xfffffffd;
const NO_STREAM = 0xffffffff;
/** Streams below this size live in the mini stream; ours are padded up to it to stay in plain sectors. */
const MINI_STREAM_CUTOFF = 4096;

export interface CompoundEntry {
  name: string;
  /** A stream's bytes; a storage when absent. */
  data?: Buffer;
}

export interface CompoundOptions {
  /** Point the directory's sector at itself: a chain that never ends. */
  directoryLoop?: boolean;
  /** Point the second sector of each stream back at its first. */
  streamLoop?: boolean;
}

/**
 * A compound file as Office writes one in its simplest form: the FAT in sector 0, the directory (the root entry and
 * then `entries`, linked as right siblings) from sector 1, within the first 4 KiB, then each stream in whole sectors.
 */
export function compoundFile(entries: CompoundEntry[], options: CompoundOptions = {}): Buffer {
  const directorySectors = Math.ceil(((entries.length + 1) * 128) / SECTOR);
  const fat: number[] = [FAT_SECT];
  const chain = (count: number, loop = false): number => {
    const start = fat.length;
    // A loop turns back from the second sector (or the only one), before the chain has the sectors its size needs.
    const turn = loop ? Math.min(1, count - 1) : -1;
    for (let i = 0; i < count; i++) fat.push(i === turn ? start : i === count - 1 ? END_OF_CHAIN : fat.length + 1);
    return start;
  };
  chain(directorySectors, options.directoryLoop);
  const streams = entries.map((entry) => {
    if (!entry.data) return { start: END_OF_CHAIN, size: 0, bytes: Buffer.alloc(0) };
    const size = Math.max(entry.data.length, MINI_STREAM_CUTOFF);
    const sectors = Math.ceil(size / SECTOR);
    const bytes = Buffer.alloc(sectors * SECTOR);
    entry.data.copy(bytes);
    return { start: chain(sectors, options.streamLoop), size, bytes };
  });
  if (fat.length > SECTOR / 4) throw new Error('compoundFile: more sectors than one FAT sector maps');

  const header = Buffer.alloc(SECTOR);
  Buffer.from([0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]).copy(header);
  header.writeUInt16LE(0x3e, 24);
  header.writeUInt16LE(3, 26);
  header.writeUInt16LE(0xfffe, 28);
  header.writeUInt16LE(9, 30);
  header.writeUInt16LE(6, 32);
  header.writeUInt32LE(1, 44);
  header.writeUInt32LE(1, 48);
  header.writeUInt32LE(MINI_STREAM_CUTOFF, 56);
  header.writeUInt32LE(END_OF_CHAIN, 60);
  header.writeUInt32LE(END_OF_CHAIN, 68);
  for (let i = 0; i < 109; i++) header.writeUInt32LE(i === 0 ? 0 : FREE_SECT, 76 + i * 4);

  const fatSector = Buffer.alloc(SECTOR, 0xff);
  fat.forEach((next, i) => fatSector.writeUInt32LE(next, i * 4));

  const directory = Buffer.alloc(directorySectors * SECTOR);
  const writeEntry = (index: number, name: string, type: number, start: number, size: number, child: number) => {
    const at = index * 128;
    directory.write(`${name}\0`, at, 'utf16le');
    directory.writeUInt16LE((name.length + 1) * 2, at + 64);
    directory[at + 66] = type;
    directory[at + 67] = 1;
    directory.writeUInt32LE(NO_STREAM, at + 68);
    directory.writeUInt32LE(index > 0 && index < entries.length ? index + 1 : NO_STREAM, at + 72);
    directory.writeUInt32LE(child, at + 76);
    directory.writeUInt32LE(start, at + 116);
    directory.writeUInt32LE(size, at + 120);
  };
  writeEntry(0, 'Root Entry', 5, END_OF_CHAIN, 0, entries.length > 0 ? 1 : NO_STREAM);
  entries.forEach((entry, i) =>
    writeEntry(i + 1, entry.name, entry.data ? 2 : 1, streams[i]!.start, streams[i]!.size, NO_STREAM),
  );
  return Buffer.concat([header, fatSector, directory, ...streams.map((stream) => stream.bytes)]);
}

/** A SummaryInformation property set (MS-OLEPS) in UTF-8 (code page 65001): strings and 32-bit integers by id. */
export function summaryInformation(properties: Array<[number, string | number]>): Buffer {
  const all: Array<[number, string | number]> = [[1, 65001], ...properties];
  const values = all.map(([id, value]) => {
    if (id === 1) return Buffer.from([2, 0, 0, 0, 0xe9, 0xfd, 0, 0]); // VT_I2 65001
    if (typeof value === 'number') {
      const bytes = Buffer.alloc(8);
      bytes.writeUInt32LE(3, 0);
      bytes.writeInt32LE(value, 4);
      return bytes;
    }
    const text = Buffer.from(`${value}\0`, 'utf8');
    const bytes = Buffer.alloc(8 + Math.ceil(text.length / 4) * 4);
    bytes.writeUInt32LE(0x1e, 0);
    bytes.writeUInt32LE(text.length, 4);
    text.copy(bytes, 8);
    return bytes;
  });
  const table = Buffer.alloc(8 + all.length * 8);
  let offset = table.length;
  all.forEach(([id], i) => {
    table.writeUInt32LE(id, 8 + i * 8);
    table.writeUInt32LE(offset, 12 + i * 8);
    offset += values[i]!.length;
  });
  table.writeUInt32LE(offset, 0);
  table.writeUInt32LE(all.length, 4);
  const header = Buffer.alloc(48);
  header.writeUInt16LE(0xfffe, 0);
  header.writeUInt32LE(1, 24);
  // FMTID_SummaryInformation, F29F85E0-4FF9-1068-AB91-08002B27B3D9
  Buffer.from('e0859ff2f94f6810ab9108002b27b3d9', 'hex').copy(header, 28);
  header.writeUInt32LE(48, 44);
  return Buffer.concat([header, table, ...values]);
}

// ---- OOXML packages ----

/** An OOXML package: its [Content_Types].xml naming `main` (what sniffing reads), then `parts`. */
export function ooxml(main: string, parts: ZipEntry[]): Buffer {
  const types =
    '<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
    `<Override PartName="/word/document.xml" ContentType="${main}.main+xml"/></Types>`;
  return zip([{ name: '[Content_Types].xml', content: types, deflate: true }, ...parts]);
}
