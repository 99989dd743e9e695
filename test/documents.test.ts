// Kind `document` through the real API and a real worker process: office documents made by LibreOffice, read for
// their metadata without it, and hostile ones (bombs, entity expansion, looping sector chains, truncation), each of
// which must fail alone with a clear code while the worker goes on.
import { expect } from 'chai';
import sharp from 'sharp';
import type { File } from '../core/fileRecord.js';
import { sniffKind } from '../core/kinds.js';
import { HEAD_BYTES } from '../core/storage/index.js';
import {
  compoundFile,
  convertedDocuments,
  ooxml,
  SOURCES,
  summaryInformation,
  type SourceName,
} from './support/documents.js';
import { truncated, zip } from './support/fixtures.js';
import { killStartedProcesses, startWorkerProcess, type Started } from './support/processes.js';
import { startService, uploadFile, waitForStatus, type TestService, type UploadPart } from './support/service.js';
import { findProgram, requireProgram } from './support/tools.js';

const MIB = 1024 * 1024;
const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';
const OLE2 = 'application/x-cfb';
const NO_COUNTS = { pages: null, sheets: null, slides: null, words: null, macros: false };
/**
 * What the worker adds where LibreOffice is installed (it draws office documents' first pages) and cannot open a
 * document built here, whose compound file holds only what our readers need: the result stands, without renderings.
 */
const UNREADABLE_BY_LIBREOFFICE = findProgram('soffice')
  ? ['LibreOffice could not read the document; it has no thumbnail or preview.']
  : [];

const coreXml = (inner: string, prologue = '') =>
  `<?xml version="1.0" encoding="UTF-8"?>${prologue}<cp:coreProperties ` +
  'xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties" ' +
  `xmlns:dc="http://purl.org/dc/elements/1.1/">${inner}</cp:coreProperties>`;

/** Ten entities of ten references each: expanded, the title would be 10^9 "lol"s. */
const BILLION_LAUGHS =
  '<!DOCTYPE lolz [<!ENTITY lol0 "lol">' +
  Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i};`.repeat(10)}">`).join('') +
  ']>';

/** The zip with `name`'s uncompressed size set to `size` in its local and central headers: a lie. */
function declaringSize(bytes: Buffer, name: string, size: number): Buffer {
  const patched = Buffer.from(bytes);
  const nameBytes = Buffer.from(name);
  for (const [signature, nameAt, sizeAt] of [
    [0x04034b50, 30, 22],
    [0x02014b50, 46, 24],
  ] as const) {
    for (let at = 0; at + nameAt <= patched.length; at++) {
      if (patched.readUInt32LE(at) !== signature) continue;
      if (patched.subarray(at + nameAt, at + nameAt + nameBytes.length).equals(nameBytes))
        patched.writeUInt32LE(size, at + sizeAt);
    }
  }
  return patched;
}

const summary = (title: string, author: string, pages: number, words: number) =>
  summaryInformation([
    [2, title],
    [4, author],
    [14, pages],
    [15, words],
  ]);

const wordDocument = (extra: Array<{ name: string; data?: Buffer }> = []) =>
  compoundFile([
    { name: 'WordDocument', data: Buffer.alloc(5000, 0x20) },
    { name: '\x05SummaryInformation', data: summary('Minutes', 'Zoë Ångström', 3, 1234) },
    ...extra,
  ]);

/** A failure's code, and what its message must say. */
/** The start of a CompObj stream naming Word 97 by its class id, all that sniffing needs to see. */
const WORD_COMPOBJ = Buffer.from('0100feff030a0000ffffffff0609020000000000c000000000000046', 'hex');

type Expected = { failed: string; saying?: RegExp } | { processed: (file: File) => void };

/** Documents built here, all uploaded at once, each with how it must end. */
function craftedCases(): Array<[string, UploadPart, Expected]> {
  const bomb = Buffer.alloc(20 * MIB, 0x20);
  return [
    [
      'a .doc whose directory is in its first 4 KiB, with counts in SummaryInformation',
      { name: 'minutes.doc', content: wordDocument() },
      {
        processed: (file) => {
          expect(file).to.include({ kind: 'document', content_type: 'application/msword' });
          expect(file.result).to.deep.include({
            format: 'doc',
            title: 'Minutes',
            author: 'Zoë Ångström',
            ...NO_COUNTS,
            pages: 3,
            words: 1234,
            warnings: UNREADABLE_BY_LIBREOFFICE,
          });
        },
      },
    ],
    [
      'a .doc carrying a VBA project, processed and never run',
      { name: 'macro.doc', content: wordDocument([{ name: 'Macros' }, { name: 'VBA' }]) },
      {
        processed: (file) => {
          expect(file.result).to.deep.include({ format: 'doc', macros: true });
          expect(file.result!.warnings).to.deep.equal([
            'The document carries macros; they were not run.',
            ...UNREADABLE_BY_LIBREOFFICE,
          ]);
        },
      },
    ],
    [
      'a .docm with a VBA project',
      {
        name: 'macro.docm',
        content: ooxml('application/vnd.ms-word.document.macroEnabled', [
          { name: 'word/document.xml', content: '<w:document/>' },
          { name: 'word/vbaProject.bin', content: Buffer.from('Attribute VB_Name = "Shell"') },
          { name: 'docProps/core.xml', content: coreXml('<dc:title>Macro &amp; Co</dc:title>'), deflate: true },
          {
            name: 'docProps/app.xml',
            content:
              '<Properties xmlns="http://schemas.openxmlformats.org/officeDocument/2006/extended-properties">' +
              '<Pages>4</Pages><Words>321</Words></Properties>',
          },
        ]),
      },
      {
        processed: (file) => {
          expect(file).to.include({
            kind: 'document',
            content_type: 'application/vnd.ms-word.document.macroenabled.12',
          });
          expect(file.result).to.deep.include({
            format: 'docm',
            title: 'Macro & Co',
            author: null,
            ...NO_COUNTS,
            pages: 4,
            words: 321,
            macros: true,
          });
        },
      },
    ],
    [
      'an RTF with its counts and escaped characters in \\info',
      {
        name: 'menu.rtf',
        content:
          "{\\rtf1\\ansi{\\fonttbl{\\f0 Arial;}}{\\info{\\title Caf\\'e9 \\u8220?Menu\\u8221? \\{1\\}}" +
          '{\\author Jean\\par Dupont}{\\nofpages2}{\\nofwords345}}\\f0 Hello.\\par}',
      },
      {
        processed: (file) => {
          expect(file).to.include({ kind: 'document', content_type: 'application/rtf' });
          expect(file.result).to.deep.include({
            format: 'rtf',
            title: 'Café “Menu” {1}',
            author: 'JeanDupont',
            ...NO_COUNTS,
            pages: 2,
            words: 345,
          });
        },
      },
    ],
    [
      'a docx whose docProps/app.xml inflates to 20 MiB',
      {
        name: 'bomb.docx',
        content: ooxml(DOCX, [{ name: 'docProps/app.xml', content: bomb, deflate: true }]),
      },
      { failed: 'too_complex', saying: /docProps\/app\.xml inflates to more than 1048576 bytes/ },
    ],
    [
      'the same bomb declaring 200 bytes',
      {
        name: 'liar.docx',
        content: declaringSize(
          ooxml(DOCX, [{ name: 'docProps/app.xml', content: bomb, deflate: true }]),
          'docProps/app.xml',
          200,
        ),
      },
      { failed: 'too_complex', saying: /docProps\/app\.xml inflates to more than 1048576 bytes/ },
    ],
    [
      'a docx whose core.xml is a billion laughs',
      {
        name: 'laughs.docx',
        content: ooxml(DOCX, [
          { name: 'docProps/core.xml', content: coreXml('<dc:title>&lol9;</dc:title>', BILLION_LAUGHS) },
        ]),
      },
      { failed: 'corrupt_file', saying: /core\.xml declares a DTD/ },
    ],
    [
      'a .doc whose directory sector chain loops',
      {
        name: 'loop.doc',
        content: compoundFile([{ name: 'WordDocument', data: Buffer.alloc(5000) }], { directoryLoop: true }),
      },
      { failed: 'corrupt_file', saying: /directory sector chain that loops/ },
    ],
    [
      'a .doc whose SummaryInformation sector chain loops',
      {
        name: 'stream-loop.doc',
        content: compoundFile(
          [
            { name: 'WordDocument', data: Buffer.alloc(5000) },
            { name: '\x05SummaryInformation', data: summary('x', 'y', 1, 1) },
          ],
          { streamLoop: true },
        ),
      },
      { failed: 'corrupt_file', saying: /stream sector chain that loops/ },
    ],
    ['a truncated .doc', { name: 'cut.doc', content: truncated(wordDocument(), 0.6) }, { failed: 'corrupt_file' }],
    [
      'a truncated docx',
      {
        name: 'cut.docx',
        content: truncated(
          ooxml(DOCX, [{ name: 'docProps/core.xml', content: coreXml('<dc:title>Cut</dc:title>'.repeat(50)) }]),
        ),
      },
      { failed: 'corrupt_file' },
    ],
    [
      'a compound file whose CompObj says Word, with no WordDocument stream',
      { name: 'hollow.doc', content: compoundFile([{ name: '\x01CompObj', data: WORD_COMPOBJ }]) },
      { failed: 'unsupported_format' },
    ],
  ];
}

const CRAFTED = craftedCases();

/** The formats LibreOffice makes of each source, and what its metadata must read as. */
const REAL: Array<{ source: SourceName; format: string; contentType: string; counts: Record<string, number> }> = [
  { source: 'text', format: 'docx', contentType: DOCX, counts: {} },
  {
    source: 'text',
    format: 'odt',
    contentType: 'application/vnd.oasis.opendocument.text',
    counts: { pages: 1, words: 7 },
  },
  // LibreOffice writes the directory after the streams: sniffing knows these by their CompObj stream or first
  // workbook record (see core/ole2Head.ts).
  { source: 'text', format: 'doc', contentType: 'application/msword', counts: {} },
  { source: 'text', format: 'rtf', contentType: 'application/rtf', counts: {} },
  {
    source: 'spreadsheet',
    format: 'xlsx',
    contentType: 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
    counts: { sheets: 2 },
  },
  {
    source: 'spreadsheet',
    format: 'ods',
    contentType: 'application/vnd.oasis.opendocument.spreadsheet',
    counts: { sheets: 2 },
  },
  { source: 'spreadsheet', format: 'xls', contentType: 'application/vnd.ms-excel', counts: {} },
  {
    source: 'presentation',
    format: 'pptx',
    contentType: 'application/vnd.openxmlformats-officedocument.presentationml.presentation',
    counts: { slides: 3 },
  },
  {
    source: 'presentation',
    format: 'odp',
    contentType: 'application/vnd.oasis.opendocument.presentation',
    counts: { slides: 3 },
  },
  { source: 'presentation', format: 'ppt', contentType: 'application/vnd.ms-powerpoint', counts: {} },
];

/**
 * A compound file whose main stream is named past the first directory sector (three storages come first), so that
 * only how the stream starts (`start`, hex), at the first sector after the directory, tells the program.
 */
const behindStorages = (name: string, start: string) =>
  compoundFile([
    { name: 'A' },
    { name: 'B' },
    { name: 'C' },
    { name, data: Buffer.concat([Buffer.from(start, 'hex'), Buffer.alloc(5000)]) },
  ]);

describe('sniffing office documents', () => {
  const sniffed = async (name: string, content: Buffer) => {
    const { kind, content_type } = await sniffKind(content.subarray(0, HEAD_BYTES), name);
    return [name, kind, content_type];
  };

  it('tells them from the bytes, whatever the name, and leaves other zips and compound files what they are', async () => {
    const odt = zip([
      { name: 'mimetype', content: 'application/vnd.oasis.opendocument.text' },
      { name: 'content.xml', content: '<office:document-content/>' },
    ]);
    const cases: Array<[string, Buffer, string, string]> = [
      ['letter.zip', ooxml(DOCX, [{ name: 'word/document.xml', content: '<w/>' }]), 'document', DOCX],
      ['letter.txt', odt, 'document', 'application/vnd.oasis.opendocument.text'],
      ['old.bin', wordDocument(), 'document', 'application/msword'],
      [
        'sheet.doc',
        compoundFile([{ name: 'Workbook', data: Buffer.alloc(5000) }]),
        'document',
        'application/vnd.ms-excel',
      ],
      [
        'slides',
        compoundFile([{ name: 'PowerPoint Document', data: Buffer.alloc(5000) }]),
        'document',
        'application/vnd.ms-powerpoint',
      ],
      ['word.bin', compoundFile([{ name: '\x01CompObj', data: WORD_COMPOBJ }]), 'document', 'application/msword'],
      ['fib.bin', behindStorages('WordDocument', 'eca5c100'), 'document', 'application/msword'],
      ['bof.bin', behindStorages('Workbook', '0908100000060500'), 'document', 'application/vnd.ms-excel'],
      ['slides.bin', behindStorages('PowerPoint Document', '0f00e803'), 'document', 'application/vnd.ms-powerpoint'],
      ['setup.msi', compoundFile([{ name: 'Installer', data: Buffer.alloc(5000) }]), 'other', OLE2],
      ['notes.txt', Buffer.from('{\\rtf1\\ansi Hello.}'), 'document', 'application/rtf'],
      [
        'app.docx',
        zip([{ name: 'META-INF/MANIFEST.MF', content: 'Manifest-Version: 1.0\n' }]),
        'archive',
        'application/java-archive',
      ],
    ];
    expect(await Promise.all(cases.map(([name, content]) => sniffed(name, content)))).to.deep.equal(
      cases.map(([name, , kind, contentType]) => [name, kind, contentType]),
    );
  });
});

describe('kind document', function () {
  this.timeout(180_000);
  let service: TestService;
  let worker: Started;
  let admin: string;

  before(async () => {
    service = await startService({ worker: false, jobTimeoutMs: 30_000 });
    ({ worker, admin } = await startWorkerProcess({
      QUEUE_NAME: service.queueName,
      WORKER_CONCURRENCY: '2',
      JOB_TIMEOUT_MS: '30000',
    }));
  });

  after(async () => {
    worker?.child.kill('SIGTERM');
    await worker?.exited;
    await service?.close();
    killStartedProcesses();
  });

  const processed = async (part: UploadPart): Promise<File> =>
    waitForStatus(service.url, (await uploadFile(service.url, part)).id, ['processed', 'failed'], 60_000);

  describe('documents made by LibreOffice', () => {
    const done = new Map<string, File>();

    before(async function () {
      const soffice = requireProgram(this, 'soffice');
      const formats = { text: [], spreadsheet: [], presentation: [] } as Record<SourceName, string[]>;
      for (const { source, format } of REAL) formats[source].push(format);
      const documents = await convertedDocuments(soffice, formats);
      const files = await Promise.all(
        REAL.map(({ source, format }) =>
          processed({ name: `${source}.${format}`, content: documents.get(`${source}.${format}`)! }),
        ),
      );
      REAL.forEach(({ source, format }, i) => done.set(`${source}.${format}`, files[i]!));
    });

    for (const { source, format, contentType, counts } of REAL) {
      it(`reads a ${format} (${source}): kind document, ${contentType}, its title, author and counts`, () => {
        const file = done.get(`${source}.${format}`)!;
        expect(file).to.include({ status: 'processed', kind: 'document', content_type: contentType });
        // LibreOffice is installed here (it made these): the worker drew each one's first page
        expect(file).to.include({
          thumbnail: `${service.url}/files/${file.id}/thumbnail`,
          preview: `${service.url}/files/${file.id}/preview`,
        });
        expect(file.result).to.deep.equal({
          sha256_verified: true,
          bytes_read: file.size,
          warnings: [],
          truncated: false,
          format,
          title: SOURCES[source].title,
          author: SOURCES[source].author,
          ...NO_COUNTS,
          ...counts,
        });
      });
    }
  });

  it("serves an office document's first page, drawn by LibreOffice and pdftoppm, as WebPs of at most 256 and 1024 px", async function () {
    const soffice = requireProgram(this, 'soffice');
    const documents = await convertedDocuments(soffice, { text: ['docx'], spreadsheet: [], presentation: [] });
    const file = await processed({ name: 'letter.docx', content: documents.get('text.docx')! });
    expect(file, JSON.stringify(file.error)).to.include({ status: 'processed' });
    for (const [rendering, side] of [
      ['thumbnail', 256],
      ['preview', 1024],
    ] as const) {
      const response = await fetch(`${service.url}/files/${file.id}/${rendering}`);
      expect(response.headers.get('content-type')).to.equal('image/webp');
      const size = await sharp(Buffer.from(await response.arrayBuffer())).metadata();
      // a portrait page: its height is the longer side
      expect(size, rendering).to.include({ format: 'webp', height: side });
      expect(size.width, rendering).to.be.below(side);
    }
  });

  describe('documents built here, hostile ones among them', () => {
    const outcomes = new Map<string, File>();
    let startedAt: number;

    before(async () => {
      startedAt = Date.now();
      const files = await Promise.all(CRAFTED.map(([, part]) => processed(part)));
      CRAFTED.forEach(([what], i) => outcomes.set(what, files[i]!));
    });

    for (const [what, , expected] of CRAFTED) {
      it('failed' in expected ? `fails ${what} with ${expected.failed}, without a retry` : `processes ${what}`, () => {
        const file = outcomes.get(what)!;
        if ('failed' in expected) {
          expect([file.status, file.error?.code], file.error?.message).to.deep.equal(['failed', expected.failed]);
          expect(file.attempts).to.equal(1);
        } else {
          expect(file.status, file.error?.message).to.equal('processed');
          expected.processed(file);
        }
      });
    }

    it('ends them all within seconds, and the worker goes on with the next file', async () => {
      expect(Date.now() - startedAt).to.be.below(30_000);
      const next = await processed({ name: 'after.txt', content: 'still here\n' });
      expect(next.status).to.equal('processed');
      expect(worker.child.exitCode).to.equal(null);
      expect((await fetch(`${admin}/healthz`)).status).to.equal(200);
    });
  });
});
