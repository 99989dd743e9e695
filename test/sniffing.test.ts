import { expect } from 'chai';
import { sniffKind } from '../core/kinds.js';
import { HEAD_BYTES } from '../core/storage/index.js';

/** A file as the upload sees it: its name, and its bytes (of which it keeps the head). */
type Case = [name: string, content: string | Buffer, contentType: string];

/** Sniffs each case from its head, as an upload does, and compares the whole table at once. */
async function expectSniffed(cases: Case[]): Promise<void> {
  const sniffed = await Promise.all(
    cases.map(async ([name, content]) => {
      const sniffed = await sniffKind(Buffer.from(content).subarray(0, HEAD_BYTES), name);
      return [name, sniffed.kind, sniffed.content_type];
    }),
  );
  expect(sniffed).to.deep.equal(cases.map(([name, , contentType]) => [name, 'text', contentType]));
}

const utf8 = (type: string) => `${type}; charset=utf-8`;

/** A CSV with a header, quoted commas, a quoted line break and an escaped quote. */
const PEOPLE =
  [
    'name,born,city',
    'Ada Lovelace,1815,London',
    '"Hopper, Grace",1906,"New York"',
    'Alan Turing,1912,"Maida Vale,\nLondon"',
    '"Katherine ""Kat"" Johnson",1918,White Sulphur Springs',
  ].join('\n') + '\n';

/** `rows` records of a CSV whose middle field is quoted and spans two lines: the head ends inside one. */
const bigCsv = (rows: number) =>
  [
    'id,remark,score',
    ...Array.from({ length: rows }, (_, i) => `${i},"${'a remark, '.repeat(12 + (i % 7))}\nthe end",${i % 100}`),
  ].join('\r\n');

const PROSE = [
  'It was the best of times, it was the worst of times, it was the age of wisdom,',
  'it was the age of foolishness, it was the epoch of belief, it was the epoch of',
  'incredulity, it was the season of Light, it was the season of Darkness.',
  '',
  'We had everything before us, we had nothing before us; we were all going direct',
  'to Heaven, we were all going direct the other way - in short, the period was so',
  'far like the present period.',
].join('\n');

const README = [
  '# file-processor',
  '',
  'Takes files and tells what they hold. See the [API](https://example.com/docs).',
  '',
  '- upload a file',
  '- read its result',
  '',
  '```sh',
  'make run',
  '```',
  '',
].join('\n');

const SVG_LOGO =
  '<?xml version="1.0" encoding="UTF-8"?>\n' +
  '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>\n';

describe('sniffing text formats from the bytes', () => {
  it('reads CSV and TSV from records of one shape, whatever the name, quoted commas and line breaks included', async () => {
    await expectSniffed([
      ['people.csv', PEOPLE, utf8('text/csv')],
      ['people.txt', PEOPLE, utf8('text/csv')],
      ['people', PEOPLE, utf8('text/csv')],
      ['people.json', PEOPLE, utf8('text/csv')],
      ['scores.txt', 'id\tname\tscore\n1\tAda\t9.5\n2\tAlan\t7\n', utf8('text/tab-separated-values')],
      ['scores.csv', 'id\tname\tscore\n1\tAda\t9.5\n2\tAlan\t7\n', utf8('text/csv')],
      ['semicolons.txt', 'name;age\nAda;36\nAlan;41\n', utf8('text/csv')],
      [
        'wide.txt',
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(PEOPLE, 'utf16le')]),
        'text/csv; charset=utf-16le',
      ],
      ['legacy.txt', Buffer.from('name,city\nJosé,Málaga\nRené,Liège\n', 'latin1'), 'text/csv'],
    ]);
  });

  it('judges a file longer than the head by its head, a record cut at its end left out', async () => {
    const csv = bigCsv(500);
    const json = JSON.stringify(Array.from({ length: 400 }, (_, id) => ({ id, name: `Person ${id}`, tags: ['a'] })));
    expect(csv.length).to.be.above(2 * HEAD_BYTES);
    // The head's last record is cut inside its quoted remark: counted, it would have a field too few.
    expect(csv.slice(csv.lastIndexOf('\r\n', HEAD_BYTES), HEAD_BYTES)).not.to.include('the end');
    expect(json.length).to.be.above(2 * HEAD_BYTES);
    await expectSniffed([
      ['export', csv, utf8('text/csv')],
      ['export.txt', csv, utf8('text/csv')],
      ['dump', json, utf8('application/json')],
      ['dump.txt', json, utf8('application/json')],
      ['string.txt', `{"note": "${'x'.repeat(2 * HEAD_BYTES)}"}`, utf8('application/json')],
    ]);
  });

  it('reads JSON from an object or array that parses, or goes on parsing to the end of the head: a .csv holding JSON is JSON', async () => {
    const people = JSON.stringify([
      { name: 'Ada', born: 1815 },
      { name: 'Alan', born: 1912 },
    ]);
    await expectSniffed([
      ['people.csv', people, utf8('application/json')],
      ['people.txt', people, utf8('application/json')],
      ['people', people, utf8('application/json')],
      [
        'config.md',
        JSON.stringify({ port: 8080, hosts: ['a', 'b'], tls: null, debug: false }, null, 2),
        utf8('application/json'),
      ],
      ['empty.txt', ' [] ', utf8('application/json')],
    ]);
  });

  it('tells HTML, XML and SVG apart by their markup: doctype, root element and namespace', async () => {
    const page =
      '<!DOCTYPE html>\n<html lang="en">\n<head><title>Hi</title></head>\n<body><p>Hello.</p></body>\n</html>\n';
    const feed =
      '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom"><title>News</title></feed>\n';
    await expectSniffed([
      ['page.txt', page, utf8('text/html')],
      ['page.xml', page, utf8('text/html')],
      ['snippet', '<p>One paragraph, of HTML.</p>\n', utf8('text/html')],
      ['widget.txt', '<!-- made by hand -->\n<div class="card">Hello</div>\n', utf8('text/html')],
      ['feed.txt', feed, utf8('application/xml')],
      ['feed.html', feed, utf8('application/xml')],
      ['note', '<note><to>Ada</to><body>Hello</body></note>', utf8('application/xml')],
      ['logo.txt', SVG_LOGO, utf8('image/svg+xml')],
      ['logo', SVG_LOGO.slice(SVG_LOGO.indexOf('<svg')), utf8('image/svg+xml')],
      ['logo.xml', SVG_LOGO, utf8('image/svg+xml')],
      ['prefixed.txt', '<s:svg xmlns:s="http://www.w3.org/2000/svg"><s:circle r="1"/></s:svg>', utf8('image/svg+xml')],
    ]);
  });

  it('keeps an SVG of kind text: XML, counted as text, never rasterized', async () => {
    const { kind, content_type } = await sniffKind(Buffer.from(SVG_LOGO), 'logo.png');
    expect([kind, content_type]).to.deep.equal(['text', utf8('image/svg+xml')]);
  });

  it('reads Markdown from headings, lists, links and fences, and plain text when unsure', async () => {
    await expectSniffed([
      ['README', README, utf8('text/markdown')],
      ['README.txt', README, utf8('text/markdown')],
      ['CHANGES', 'Changes\n=======\n\n* faster uploads\n* fewer bugs\n', utf8('text/markdown')],
      ['table', '| name | age |\n|------|-----|\n| Ada | 36 |\n| Alan | 41 |\n', utf8('text/plain')],
      ['table.md', '| name | age |\n|------|-----|\n| Ada | 36 |\n| Alan | 41 |\n', utf8('text/markdown')],
      ['todo', '# Today\n\nBuy bread and call the bank.\n', utf8('text/plain')],
      ['todo.md', '# Today\n\nBuy bread and call the bank.\n', utf8('text/markdown')],
    ]);
  });

  it('keeps prose and code plain text whatever their name', async () => {
    const code = 'const a = 1;\nconst b = 2;\nconsole.log(a + b);\n';
    await expectSniffed([
      ['notes.txt', PROSE, utf8('text/plain')],
      ['notes', PROSE, utf8('text/plain')],
      ['notes.csv', PROSE, utf8('text/plain')],
      ['notes.tsv', PROSE, utf8('text/plain')],
      ['notes.json', PROSE, utf8('text/plain')],
      ['notes.md', PROSE, utf8('text/plain')],
      ['notes.html', PROSE, utf8('text/plain')],
      ['notes.svg', PROSE, utf8('text/plain')],
      ['app.js', code, utf8('text/plain')],
      ['config.yaml', 'port: 8080\nhosts:\n  - a\n  - b\n', utf8('text/plain')],
    ]);
  });

  it('lets the name break a tie between readings the content leaves open, and never decide alone', async () => {
    await expectSniffed([
      // One record with a delimiter: a CSV, or a line of text.
      ['row.csv', 'alice,30', utf8('text/csv')],
      ['row.txt', 'alice,30', utf8('text/plain')],
      ['row', 'alice,30', utf8('text/plain')],
      ['row.json', 'alice,30', utf8('text/plain')],
      // A JSON scalar: JSON, or a word.
      ['answer.json', '42\n', utf8('application/json')],
      ['answer.txt', '42\n', utf8('text/plain')],
      ['answer.csv', '42\n', utf8('text/plain')],
      // Something that opens like JSON and breaks: the worker then says where.
      ['broken.json', '{"a": [1, 2,}', utf8('application/json')],
      ['broken.csv', '{"a": [1, 2,}', utf8('text/csv')],
      ['broken', '{"a": [1, 2,}', utf8('text/plain')],
      ['events.json', '{"a":1,"b":2}\n{"a":3,"b":4}\n', utf8('application/json')],
      ['events', '{"a":1,"b":2}\n{"a":3,"b":4}\n', utf8('text/plain')],
      // An <svg> outside the SVG namespace is XML, unless the name says SVG.
      ['icon.svg', '<svg width="1" height="1"></svg>', utf8('image/svg+xml')],
      ['icon', '<svg width="1" height="1"></svg>', utf8('application/xml')],
      // Markdown that opens with HTML.
      ['README.md', '<p align="center"><img src="logo.png"></p>\n\n# Title\n', utf8('text/markdown')],
      ['README', '<p align="center"><img src="logo.png"></p>\n\n# Title\n', utf8('text/html')],
      // A Markdown list with commas in step: a table too.
      ['shopping.md', '# Shopping, week 1\n- apples, pears\n- bread, milk\n', utf8('text/markdown')],
      ['shopping', '# Shopping, week 1\n- apples, pears\n- bread, milk\n', utf8('text/csv')],
      // A single heading: Markdown, or a line of text.
      ['title.md', '# Title', utf8('text/markdown')],
      ['title.txt', '# Title', utf8('text/plain')],
    ]);
  });
});
