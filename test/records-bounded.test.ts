// What a file makes us store is bounded by us: strings well-formed and cut on a character, lists cut to a count, the
// whole result to MAX_RESULT_BYTES; and a finish the database refuses fails the file once, with why, at that attempt.
import { expect } from 'chai';
import { boundResult, MAX_RESULT_ITEMS, MAX_RESULT_STRING_BYTES, nearlyBounded } from '../core/results/bounds.js';
import { captureLogs } from './support/logs.js';
import { sql } from './support/db.js';
import { matroska, pdf, pdfWithInfoInObjectStream, zip } from './support/fixtures.js';
import { startService, uploadFile, waitForStatus, type TestService } from './support/service.js';

const KIB = 1024;
const BOUNDS = { maxBytes: 64 * KIB, maxStringBytes: MAX_RESULT_STRING_BYTES, maxItems: MAX_RESULT_ITEMS };
const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
/** True when `text` has no lone surrogate: PostgreSQL's jsonb and every JSON parser take it. */
const wellFormed = (text: string) => text.isWellFormed();

describe('boundResult', () => {
  it('keeps a result within its bounds as it is, with truncated false', () => {
    const result = { sha256_verified: true, bytes_read: 3, warnings: ['a'], names: ['x', 'y'], ratio: 1.5 };
    expect(boundResult(result, BOUNDS)).to.deep.equal({ ...result, truncated: false });
  });

  it('cuts a name of 1,023 letters and an emoji on a character, never inside its surrogate pair', () => {
    const name = `${'a'.repeat(1023)}😀`;
    const bounded = boundResult({ names: [name] }, BOUNDS) as { names: string[]; truncated: boolean };
    expect(bounded.names[0]).to.equal('a'.repeat(1023));
    expect(bounded.truncated).to.equal(true);
  });

  it('makes every string storable: NUL and lone surrogates become U+FFFD, in lists and nested objects too', () => {
    const bounded = boundResult({ title: 'a\0b', names: ['\ud83dx'], csv: { header: ['\udc00'] } }, BOUNDS);
    expect(bounded).to.deep.include({ title: 'a\ufffdb', names: ['\ufffdx'], csv: { header: ['\ufffd'] } });
    expect(JSON.stringify(bounded).isWellFormed()).to.equal(true);
  });

  it('cuts every list to its first 100 items', () => {
    const bounded = boundResult({ codecs: Array.from({ length: 1000 }, (_, i) => `c${i}`) }, BOUNDS) as {
      codecs: string[];
      truncated: boolean;
    };
    expect(bounded.codecs).to.have.length(MAX_RESULT_ITEMS);
    expect(bounded.codecs.at(-1)).to.equal('c99');
    expect(bounded.truncated).to.equal(true);
  });

  it('cuts the largest list, from its end, until the whole result fits, and keeps the small fields', () => {
    const emojiName = (i: number) => `${i}-${'😀'.repeat(300)}`;
    const result = { format: 'zip', entries: 100, names: Array.from({ length: 100 }, (_, i) => emojiName(i)) };
    const bounded = boundResult(result, BOUNDS) as { format: string; entries: number; names: string[] };
    expect(jsonBytes(bounded)).to.be.at.most(64 * KIB);
    expect(bounded).to.include({ format: 'zip', entries: 100, truncated: true });
    expect(bounded.names.length).to.be.within(50, 99);
    expect(bounded.names[0]).to.match(/^0-😀+$/u);
    bounded.names.forEach((name) => expect(Buffer.byteLength(name)).to.be.at.most(MAX_RESULT_STRING_BYTES));
  });

  it('halves the longest strings when there is no list left to cut', () => {
    const fields = Object.fromEntries(Array.from({ length: 80 }, (_, i) => [`f${i}`, 'x'.repeat(2000)]));
    const bounded = boundResult(fields, BOUNDS);
    expect(jsonBytes(bounded)).to.be.at.most(64 * KIB);
    expect(Object.keys(bounded)).to.have.length(81);
  });

  it('stores numbers JSON cannot hold as null', () => {
    expect(boundResult({ duration_seconds: Number.NaN, bitrate: Infinity }, BOUNDS)).to.include({
      duration_seconds: null,
      bitrate: null,
    });
  });
});

describe('nearlyBounded', () => {
  it("cuts a parser's fields so that boundResult makes the same of them, truncated included, and leaves renderings alone", () => {
    const emoji = '😀'.repeat(600);
    const cases = [
      { title: 'T'.repeat(5 * 1024 * 1024), n: 1 },
      { codecs: Array.from({ length: 500 }, (_, i) => `c${i}`) },
      { title: `${'a'.repeat(1023)}${emoji}`, nested: { names: Array.from({ length: 101 }, () => 'x'.repeat(1025)) } },
      { title: 'short', list: ['a', 'b'], flag: true, nothing: null },
    ];
    for (const fields of cases) {
      const cut = nearlyBounded(fields);
      expect(boundResult(cut, BOUNDS)).to.deep.equal(boundResult(fields, BOUNDS));
      expect(jsonBytes(cut)).to.be.below(400 * KIB);
    }
    expect(cases.map((fields) => boundResult(nearlyBounded(fields), BOUNDS).truncated)).to.deep.equal([
      true,
      true,
      true,
      false,
    ]);
    const webp = new Uint8Array(5000);
    expect(nearlyBounded({ thumbnail: webp }).thumbnail).to.equal(webp);
  });
});

describe('records a client can read, through a real worker', function () {
  this.timeout(60_000);
  let service: TestService;
  const logs = captureLogs('info');

  before(async () => {
    service = await startService({ logger: logs.logger, jobRetries: 1 });
  });
  after(() => service.close());

  it('processes a zip whose entry name is 1,023 letters and an emoji at its first attempt', async () => {
    const file = await uploadFile(service.url, {
      name: 'emoji.zip',
      content: zip([{ name: `${'a'.repeat(1023)}😀`, content: 'x' }]),
    });
    const done = await waitForStatus(service.url, file.id, ['processed', 'failed']);
    expect([done.status, done.attempts]).to.deep.equal(['processed', 1]);
    expect(done.result).to.deep.include({ names: ['a'.repeat(1023)], truncated: true });
  });

  it('stores a PDF whose title, author and producer are 200 KiB each as a result of a few kilobytes', async () => {
    const long = 'T'.repeat(200 * KIB);
    const file = await uploadFile(service.url, {
      name: 'swollen.pdf',
      content: pdf(['Hello'], { title: long, author: long, producer: long }),
    });
    const done = await waitForStatus(service.url, file.id, ['processed', 'failed']);
    expect(done.status, JSON.stringify(done.error)).to.equal('processed');
    expect(done.result).to.include({ title: 'T'.repeat(MAX_RESULT_STRING_BYTES), truncated: true });
    expect(jsonBytes(done.result)).to.be.below(8 * KIB);
  });

  it('stores the 3.7 KB PDF whose title, author and producer inflate to a megabyte each within its bounds', async () => {
    const megabyte = (letter: string) => letter.repeat(1024 * KIB);
    const content = pdfWithInfoInObjectStream({ Title: megabyte('T'), Author: megabyte('A'), Producer: megabyte('P') });
    expect(content.length).to.be.below(4 * KIB);
    const file = await uploadFile(service.url, { name: 'packed.pdf', content });
    const done = await waitForStatus(service.url, file.id, ['processed', 'failed'], 20_000);
    expect([done.status, done.attempts]).to.deep.equal(['processed', 1]);
    expect(done.result).to.include({ pages: 1, author: 'A'.repeat(MAX_RESULT_STRING_BYTES), truncated: true });
    expect(jsonBytes(done.result)).to.be.below(8 * KIB);
  });

  it('stores a Matroska of 42 tracks whose codec ids are 200 KiB each as a result of a few kilobytes', async () => {
    const codecIds = Array.from({ length: 42 }, (_, i) => `V_${i}_${'X'.repeat(200 * KIB)}`);
    const file = await uploadFile(service.url, { name: 'codecs.mkv', content: matroska(codecIds) });
    const done = await waitForStatus(service.url, file.id, ['processed', 'failed'], 20_000);
    expect([done.status, done.kind], JSON.stringify(done.error)).to.deep.equal(['processed', 'video']);
    expect(done.result!.codecs).to.have.length(42);
    expect(jsonBytes(done.result)).to.be.at.most(64 * KIB);
    expect(done.result).to.include({ width: 320, truncated: true });
  });

  it('keeps the whole result of a zip of 100 long names under MAX_RESULT_BYTES', async () => {
    const names = Array.from({ length: 100 }, (_, i) => `${String(i).padStart(3, '0')}-${'é'.repeat(600)}`);
    const file = await uploadFile(service.url, { name: 'names.zip', content: zip(names.map((name) => ({ name }))) });
    const done = await waitForStatus(service.url, file.id, ['processed', 'failed']);
    expect(done.status).to.equal('processed');
    expect(jsonBytes(done.result)).to.be.at.most(64 * KIB);
    expect(done.result).to.include({ entries: 100, truncated: true });
    expect((done.result!.names as string[]).every(wellFormed)).to.equal(true);
  });

  describe('when the database refuses the finish', () => {
    before(async () => {
      // A refusal planted in this run's database, for files with these names only: a permanent one (a data
      // exception, as jsonb's for a lone surrogate) and a transient one (a serialization failure) that happens once.
      await sql(`
        CREATE SEQUENCE refused_once;
        CREATE FUNCTION refuse_finish() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.status = 'processed' AND NEW.name = 'refused.txt' THEN
            RAISE EXCEPTION 'unsupported Unicode escape sequence' USING ERRCODE = '22P05';
          END IF;
          IF NEW.status = 'processed' AND NEW.name = 'flaky.txt' THEN
            -- A sequence, not a table: what the failing statement wrote would be rolled back with it.
            IF nextval('refused_once') = 1 THEN
              RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';
            END IF;
          END IF;
          RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_finish BEFORE UPDATE ON files FOR EACH ROW EXECUTE FUNCTION refuse_finish();`);
    });
    after(() => sql('DROP TRIGGER refuse_finish ON files; DROP FUNCTION refuse_finish(); DROP SEQUENCE refused_once'));

    it('fails the file once with result_unstorable, and logs why at that attempt', async () => {
      const file = await uploadFile(service.url, { name: 'refused.txt', content: 'hello\n' });
      const done = await waitForStatus(service.url, file.id, ['processed', 'failed']);
      expect([done.status, done.error?.code, done.attempts]).to.deep.equal(['failed', 'result_unstorable', 1]);
      expect(done.error!.message).to.match(/database refused what processing found \(unsupported Unicode escape/);
      const lines = logs.lines().filter((line) => line.msg === 'job' && line.file_id === file.id);
      expect(lines.map((line) => [line.level, line.outcome, line.attempts, line.error_code])).to.deep.equal([
        ['warn', 'failed', 1, 'result_unstorable'],
      ]);
      expect(JSON.stringify(lines[0]!.err)).to.match(/unsupported Unicode escape sequence/);
    });

    it('retries a finish refused for a transient reason, logging it at the attempt it happened', async () => {
      const file = await uploadFile(service.url, { name: 'flaky.txt', content: 'hello\n' });
      const done = await waitForStatus(service.url, file.id, ['processed', 'failed']);
      const lines = logs.lines().filter((line) => line.msg === 'job' && line.file_id === file.id);
      expect(done.status, JSON.stringify([done.error, lines])).to.equal('processed');
      expect(lines.map((line) => [line.level, line.outcome, line.attempts])).to.deep.equal([
        ['warn', 'retried', 1],
        ['info', 'processed', 2],
      ]);
      expect(JSON.stringify(lines[0]!.err)).to.match(/could not serialize access/);
    });
  });
});
