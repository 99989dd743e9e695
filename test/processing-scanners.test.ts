import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import type { FileRow } from '../core/fileRecord.js';
import { LocalDiskStore } from '../core/storage/localDisk.js';
import { CsvScanner } from '../worker/processors/csvScanner.js';
import { JsonScanner } from '../worker/processors/jsonScanner.js';
import { truncateUtf8 } from '../core/text.js';
import { analyzeText, textProcessor, TEXT_INLINE_MAX_BYTES } from '../worker/processors/text.js';
import type { RunInParser } from '../worker/processors/types.js';
import { rejection } from './support/eventually.js';

/** `text` cut into pieces of 1, 2, 3, ... characters: state must carry across any boundary. */
function inPieces(text: string): string[] {
  const pieces: string[] = [];
  for (let at = 0, size = 1; at < text.length; at += size, size = (size % 7) + 1)
    pieces.push(text.slice(at, at + size));
  return pieces;
}

function scanJson(pieces: string[]) {
  const scanner = new JsonScanner();
  for (const piece of pieces) scanner.feed(piece);
  return scanner.end();
}

function scanCsv(pieces: string[], delimiter?: string) {
  const scanner = new CsvScanner(delimiter);
  for (const piece of pieces) scanner.feed(piece);
  return { ...scanner.end(), unterminatedQuote: scanner.unterminatedQuote };
}

describe('streaming JSON validation', () => {
  const VALID = [
    '{}',
    '[]',
    ' {"a": 1, "b": [true, false, null], "c": {"d": "e"}} ',
    '[0, -0, 1.5, -2e10, 3E+2, 4e-3, 10, 0.25]',
    '"a string with \\"escapes\\" \\\\ \\/ \\b\\f\\n\\r\\t and \\u00e9"',
    '42',
    '-3.25e-7',
    'true',
    'null',
    '[[[[[]]]], {"": {}}]',
    '\n\t\r {"nested": [{"deep": [1, {"deeper": "yes"}]}]}\n',
  ];
  const INVALID = [
    '',
    '   ',
    '{',
    '[1, 2',
    '[1, 2,]',
    '{"a": 1,}',
    '{"a" 1}',
    '{a: 1}',
    "{'a': 1}",
    '[01]',
    '[1.]',
    '[.5]',
    '[1e]',
    '[-]',
    '[+1]',
    '"unterminated',
    '"bad escape \\x"',
    '"bad unicode \\u12G4"',
    '"control \u0001 char"',
    'tru',
    'nul',
    'True',
    '[1] [2]',
    '{"a": 1}}',
    '[1}',
    '{"a": 1]',
    'NaN',
  ];

  it('agrees with JSON.parse on what is valid, and counts the keys or items of the top level', () => {
    for (const text of VALID) {
      const value: unknown = JSON.parse(text);
      const summary = scanJson([text]);
      const type = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
      expect(summary, text).to.deep.include({ valid: true, top_level: type, error: null });
      expect(summary.keys, text).to.equal(type === 'object' ? Object.keys(value as object).length : null);
      expect(summary.items, text).to.equal(type === 'array' ? (value as unknown[]).length : null);
    }
  });

  it('agrees with JSON.parse on what is invalid, and says where', () => {
    for (const text of INVALID) {
      expect(() => void JSON.parse(text), text).to.throw();
      const summary = scanJson([text]);
      expect(summary, text).to.deep.include({ valid: false, top_level: null, keys: null, items: null });
      expect(summary.error, text).to.match(/^Line \d+, column \d+: .+\.$/);
    }
    expect(scanJson(['{\n  "a": 1,\n  }']).error).to.equal('Line 3, column 3: "}" where a key (a string) should come.');
  });

  it('checks a million nested arrays without recursion or a slot per level', () => {
    const deep = '['.repeat(1_000_000) + ']'.repeat(1_000_000);
    expect(scanJson([deep])).to.deep.include({ valid: true, top_level: 'array', items: 1 });
    expect(scanJson([deep.slice(0, -1)])).to.deep.include({
      valid: false,
      error: 'Line 1, column 1999999: the text ends inside a value.',
    });
  });

  it('gives the same answer however the text is split into chunks', () => {
    for (const text of [...VALID, ...INVALID]) expect(scanJson(inPieces(text)), text).to.deep.equal(scanJson([text]));
  });
});

describe('streaming CSV reading', () => {
  it('guesses the delimiter among comma, semicolon, tab and bar from the first lines', () => {
    expect(scanCsv(['a;b;c\n1;2;3\n']).delimiter).to.equal(';');
    expect(scanCsv(['a|b\n1|2\n']).delimiter).to.equal('|');
    expect(scanCsv(['a\tb\n1\t2\n']).delimiter).to.equal('\t');
    expect(scanCsv(['"x,y";z\n"1,2";3\n']).delimiter).to.equal(';');
    expect(scanCsv(['single column\nvalues\n'])).to.deep.include({ delimiter: ',', columns: 1 });
  });

  it('counts records, not lines: quoted fields keep delimiters, quotes and line breaks', () => {
    const text = 'id,note\r\n1,"a ""quoted"" word"\r\n2,"two\r\nlines, one field"\r\n\r\n3,plain\r\n';
    expect(scanCsv([text])).to.deep.include({ columns: 2, header: true, rows: 3, unterminatedQuote: false });
    expect(scanCsv(inPieces(text))).to.deep.equal(scanCsv([text]));
  });

  it('guesses a header when its values differ in type or length from the column below', () => {
    expect(scanCsv(['name,score\nann,10\nbob,7\n']).header).to.equal(true);
    expect(scanCsv(['code,label\nAB,x\nCD,y\n']).header).to.equal(true);
    expect(scanCsv(['ann,10\nbob,7\n']).header).to.equal(false);
    expect(scanCsv(['only,one,record\n']).header).to.equal(false);
  });

  it('decides the delimiter once 64 KiB have been seen, and keeps counting after', () => {
    const row = 'alpha;beta;gamma\n';
    const text = 'apple;pear;grape\n' + row.repeat(10_000);
    expect(scanCsv([text.slice(0, 70_000), text.slice(70_000)])).to.deep.equal({
      delimiter: ';',
      columns: 3,
      column_names: null,
      header: false,
      rows: 10_001,
      unterminatedQuote: false,
    });
  });

  it('notices a quoted field still open at the end', () => {
    expect(scanCsv(['a,b\n1,"open']).unterminatedQuote).to.equal(true);
    expect(scanCsv(['a,b\n1,"closed"']).unterminatedQuote).to.equal(false);
  });

  it('counts the columns of a record of millions of fields without keeping them', () => {
    const commas = ','.repeat(64 * 1024);
    const scanner = new CsvScanner();
    const before = process.memoryUsage().heapUsed;
    scanner.feed('x');
    for (let i = 0; i < 80; i++) scanner.feed(commas);
    const summary = scanner.end();
    const growth = process.memoryUsage().heapUsed - before;
    expect(summary).to.deep.equal({
      delimiter: ',',
      columns: 80 * 64 * 1024 + 1,
      column_names: null,
      header: false,
      rows: 1,
    });
    // Keeping every field took 40 MB here (a slot per field); what is kept is now a few kilobytes.
    expect(growth, `heap grew by ${growth} bytes`).to.be.below(8 * 1024 * 1024);
  });

  it('guesses the header from the first columns of a very wide file, and counts all of them', () => {
    const columns = 5_000;
    const header = Array.from({ length: columns }, (_, i) => `name${i}`).join(',');
    const row = Array.from({ length: columns }, (_, i) => String(i)).join(',');
    expect(scanCsv([`${header}\n${row}\n${row}\n`])).to.deep.include({ columns, header: true, rows: 2 });
  });
});

describe('text counting', () => {
  const analyze = async (name: string, content: Buffer, contentType = 'text/plain; charset=utf-8') => {
    const file = path.join(os.tmpdir(), `fp-text-${process.pid}-${name}`);
    await writeFile(file, content);
    return analyzeText({
      source: { path: file },
      contentType,
      size: content.length,
      limits: { maxImagePixels: 1, pdfMaxDecodedBytes: 1 },
    });
  };

  it('sees a CRLF split between two read chunks as one line ending', async () => {
    const chunk = 256 * 1024;
    const content = Buffer.concat([Buffer.alloc(chunk - 1, 'a'), Buffer.from('\r\nb\r\n')]);
    const { fields } = await analyze('crlf', content);
    expect(fields).to.include({ line_endings: 'crlf', lines: 2, words: 2, characters: chunk + 4 });
  });

  it('counts characters as code points, emoji and all, and Unicode spaces between words', async () => {
    const { fields } = await analyze('emoji', Buffer.from('😀 smile\u00a0wide\u3000open'));
    expect(fields).to.include({ characters: 17, words: 4, lines: 1, line_endings: 'none' });
  });

  it('reads a legacy text that the upload could not place as windows-1252', async () => {
    const { fields, warnings } = await analyze('legacy', Buffer.from('na\xefve\n', 'latin1'), 'text/plain');
    expect(fields).to.include({ encoding: 'windows-1252', characters: 6 });
    expect(warnings).to.have.length(1);
  });

  it('finds the same from bytes in memory as from the file, whatever the encoding or format', async () => {
    const cases: Array<[string, Buffer, string]> = [
      ['utf8', Buffer.from('héllo wörld\r\nsecond line 😀\n'), 'text/plain; charset=utf-8'],
      ['bom', Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('a b\nc')]), 'text/plain; charset=utf-8'],
      [
        'utf16',
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('one two\n', 'utf16le')]),
        'text/plain; charset=utf-16le',
      ],
      [
        'late-bad-byte',
        Buffer.concat([Buffer.alloc(5000, 'a'), Buffer.from('\xe9t\xe9', 'latin1')]),
        'text/plain; charset=utf-8',
      ],
      ['cut-character', Buffer.from('caf\xc3', 'latin1'), 'text/plain; charset=utf-8'],
      ['csv', Buffer.from('name,age\n"Ada, L.",36\nAlan,41\n'), 'text/csv; charset=utf-8'],
      ['json', Buffer.from('{"a": [1, 2], "b": {"c": null}}'), 'application/json; charset=utf-8'],
      ['bad-json', Buffer.from('{"a": [1, 2}'), 'application/json; charset=utf-8'],
    ];
    for (const [name, content, contentType] of cases) {
      const fromFile = await analyze(name, content, contentType);
      const inMemory = await analyzeText({
        source: { path: '/nonexistent' },
        contentType,
        size: content.length,
        limits: { maxImagePixels: 1, pdfMaxDecodedBytes: 1 },
        bytes: content,
      });
      expect(inMemory, name).to.deep.equal(fromFile);
    }
  });
});

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('text processor', () => {
  const storage = new LocalDiskStore(path.join(os.tmpdir(), `fp-inline-${process.pid}`));
  before(() => storage.init());
  after(() => rm(storage.root, { recursive: true, force: true }));

  /** Processes `content` as a stored text file recorded with `recordedSha256`, counting the analyses sent to a parser process. */
  async function processText(id: string, content: Buffer, recordedSha256 = sha256(content)) {
    await storage.put(id, Readable.from([content]), { maxBytes: content.length });
    let parserRuns = 0;
    const inParser: RunInParser = (_module, analysis, ...args) => (parserRuns++, analysis(...args));
    const file = {
      id,
      size: content.length,
      sha256: recordedSha256,
      content_type: 'text/plain; charset=utf-8',
    } as FileRow;
    const output = await textProcessor.process({
      file,
      storage,
      limits: { maxImagePixels: 1, pdfMaxDecodedBytes: 1 },
      inParser,
      deadline: Date.now() + 10_000,
    });
    return { output, parserRuns };
  }

  it('analyses small texts on the event loop and larger ones in a parser process, with the same fields', async () => {
    const line = 'the quick brown fox\n';
    const small = Buffer.from(line.repeat(Math.floor(TEXT_INLINE_MAX_BYTES / line.length)));
    const large = Buffer.concat([small, Buffer.from(line)]);
    const inline = await processText('00000000-0000-7000-8000-00000000a001', small);
    const isolated = await processText('00000000-0000-7000-8000-00000000a002', large);
    expect(inline.parserRuns).to.equal(0);
    expect(isolated.parserRuns).to.equal(1);
    expect(inline.output.result).to.include({
      sha256_verified: true,
      bytes_read: small.length,
      lines: small.length / line.length,
      encoding: 'utf-8',
    });
    expect(isolated.output.result).to.include({
      sha256_verified: true,
      bytes_read: large.length,
      lines: large.length / line.length,
      encoding: 'utf-8',
    });
  });

  it('checks the bytes of an inline text against the record before analysing them', async () => {
    const err = await rejection(
      processText('00000000-0000-7000-8000-00000000a003', Buffer.from('short text\n'), sha256(Buffer.from('other'))),
    );
    expect(err).to.include({ code: 'checksum_mismatch' });
  });
});

describe('PDF text excerpt', () => {
  it('keeps at most the given bytes of UTF-8 without cutting a character', () => {
    expect(truncateUtf8('short', 1024)).to.equal('short');
    expect(truncateUtf8('ééé', 5)).to.equal('éé');
    expect(truncateUtf8('a😀b', 4)).to.equal('a');
    expect(truncateUtf8('a😀b', 5)).to.equal('a😀');
  });
});
