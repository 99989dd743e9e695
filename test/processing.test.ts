import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import sharp from 'sharp';
import type { File } from '../core/fileRecord.js';
import { mp3, mp4, pdf, png, tar, wav, zip } from './support/fixtures.js';
import { expectProblem } from './support/problems.js';
import { webpSize } from './support/webp.js';
import { startService, uploadFile, waitForStatus, type TestService, type UploadPart } from './support/service.js';

/** Uploads a file and waits until the worker has finished with it. */
async function processed(service: TestService, part: UploadPart): Promise<File> {
  const file = await uploadFile(service.url, part);
  return waitForStatus(service.url, file.id, ['processed', 'failed'], 20_000);
}

/** The header of a 2×2 Photoshop document: an image format file-type names and libvips does not load. */
function psdHeader(): Buffer {
  const header = Buffer.alloc(64);
  header.write('8BPS', 0, 'latin1');
  header.writeUInt16BE(1, 4); // version
  header.writeUInt16BE(3, 12); // channels
  header.writeUInt32BE(2, 14); // height
  header.writeUInt32BE(2, 18); // width
  header.writeUInt16BE(8, 22); // bits per channel
  header.writeUInt16BE(3, 24); // RGB
  return header;
}

const COMMON = { sha256_verified: true, warnings: [] };

describe('type-aware processing', function () {
  this.timeout(60_000);
  let service: TestService;
  before(async () => {
    service = await startService();
  });
  after(() => service.close());

  describe('image processing', () => {
    it('reads format, size, alpha and pages of a PNG, and serves a WebP thumbnail of at most 256 px', async () => {
      const done = await processed(service, { name: 'photo.png', content: png(640, 480, 3) });
      expect(done).to.include({ status: 'processed', kind: 'image', content_type: 'image/png' });
      expect(done.result).to.deep.include({
        ...COMMON,
        format: 'png',
        width: 640,
        height: 480,
        orientation: null,
        alpha: true,
        pages: 1,
        color_space: 'srgb',
      });
      expect(done.result!.thumbnail).to.deep.include({ width: 256, height: 192 });
      expect(done.thumbnail).to.equal(`${service.url}/files/${done.id}/thumbnail`);

      const response = await fetch(done.thumbnail!);
      expect(response.status).to.equal(200);
      expect(response.headers.get('content-type')).to.equal('image/webp');
      const bytes = Buffer.from(await response.arrayBuffer());
      const preview = await sharp(bytes).metadata();
      expect(preview).to.include({ format: 'webp', width: 256, height: 192 });
      expect(bytes.length).to.equal((done.result!.thumbnail as { bytes: number }).bytes);
    });

    it('serves a WebP preview of at most 1024 px beside the thumbnail, never enlarged', async () => {
      const large = await processed(service, { name: 'large.png', content: png(2048, 1536, 4) });
      expect(large.result!.preview).to.deep.include({ width: 1024, height: 768 });
      expect(large.preview).to.equal(`${service.url}/files/${large.id}/preview`);
      const response = await fetch(large.preview!);
      expect(response.headers.get('content-type')).to.equal('image/webp');
      const bytes = Buffer.from(await response.arrayBuffer());
      expect(await sharp(bytes).metadata()).to.include({ format: 'webp', width: 1024, height: 768 });
      expect(bytes.length).to.equal((large.result!.preview as { bytes: number }).bytes);
      expect(await webpSize(large.thumbnail)).to.deep.equal({ width: 256, height: 192 });

      const small = await processed(service, { name: 'small.png', content: png(640, 480, 3) });
      expect(await webpSize(small.preview)).to.deep.equal({ width: 640, height: 480 });
    });

    it('turns an EXIF-rotated JPEG upright in its thumbnail and never enlarges a small image', async () => {
      const rotated = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#336699' } })
        .jpeg()
        .withMetadata({ orientation: 6 })
        .toBuffer();
      const done = await processed(service, { name: 'rotated.jpg', content: rotated });
      expect(done.result).to.deep.include({ format: 'jpeg', width: 400, height: 200, orientation: 6, alpha: false });
      expect(done.result!.thumbnail).to.deep.include({ width: 128, height: 256 });

      const small = await processed(service, { name: 'icon.png', content: png(16, 8) });
      expect(small.result!.thumbnail).to.deep.include({ width: 16, height: 8 });
    });

    it('counts the frames of an animated GIF and previews the first', async () => {
      const frames = Buffer.concat([0x20, 0x80, 0xe0].map((shade) => Buffer.alloc(32 * 32 * 3, shade)));
      const gif = await sharp(frames, { raw: { width: 32, height: 96, channels: 3, pageHeight: 32 } })
        .gif()
        .toBuffer();
      const done = await processed(service, { name: 'anim.gif', content: gif });
      expect(done.result).to.deep.include({ format: 'gif', width: 32, height: 32, pages: 3 });
      expect(done.result!.thumbnail).to.deep.include({ width: 32, height: 32 });
    });

    it('fails a format the decoder cannot read with unsupported_format, and has no thumbnail', async () => {
      const done = await processed(service, { name: 'layers.psd', content: psdHeader() });
      expect(done).to.include({
        status: 'failed',
        kind: 'image',
        content_type: 'image/vnd.adobe.photoshop',
        thumbnail: null,
        result: null,
      });
      expect(done.error!.code).to.equal('unsupported_format');
      await expectProblem(await fetch(`${service.url}/files/${done.id}/thumbnail`), 404, 'not_found');
    });

    it('answers 404 not_found for the thumbnail or preview of a file that has none, or of no file', async () => {
      const text = await processed(service, { name: 'a.txt', content: 'no preview here' });
      expect(text).to.include({ thumbnail: null, preview: null });
      await expectProblem(await fetch(`${service.url}/files/${text.id}/thumbnail`), 404, 'not_found');
      await expectProblem(await fetch(`${service.url}/files/${text.id}/preview`), 404, 'not_found');
      await expectProblem(
        await fetch(`${service.url}/files/00000000-0000-7000-8000-000000000000/thumbnail`),
        404,
        'not_found',
      );
      await expectProblem(await fetch(`${service.url}/files/not-an-id/thumbnail`), 404, 'not_found');
    });

    it('answers 404 when the thumbnail bytes went missing, and HEAD without opening them', async () => {
      const done = await processed(service, { name: 'gone.png', content: png(20, 20, 9) });
      const head = await fetch(done.thumbnail!, { method: 'HEAD' });
      expect(head.status).to.equal(200);
      expect(head.headers.get('content-type')).to.equal('image/webp');
      await service.storage.remove(done.id);
      await expectProblem(await fetch(done.thumbnail!), 404, 'not_found');
    });

    it('removes the renderings with the file, and clears them when the file is queued again', async () => {
      const done = await processed(service, { name: 'short-lived.png', content: png(64, 64, 5) });
      const requeued = await fetch(`${service.url}/files/${done.id}/reprocess`, { method: 'POST' });
      expect(await requeued.json()).to.include({ thumbnail: null, preview: null });
      const again = await waitForStatus(service.url, done.id, ['processed']);
      expect(again.thumbnail).to.be.a('string');
      expect(again.preview).to.be.a('string');
      expect((await fetch(`${service.url}/files/${done.id}/`, { method: 'DELETE' })).status).to.equal(204);
      await expectProblem(await fetch(again.thumbnail!), 404, 'not_found');
      await expectProblem(await fetch(again.preview!), 404, 'not_found');
      for (const variant of ['thumbnail', 'preview'] as const) {
        const leftovers = await service.storage.open(done.id, { variant }).then(
          () => 'still there',
          (err: NodeJS.ErrnoException) => err.code,
        );
        expect(leftovers, variant).to.equal('ENOENT');
      }
    });
  });

  describe('text processing', () => {
    it('counts lines, words, characters and line endings of UTF-8 text', async () => {
      const done = await processed(service, { name: 'notes.txt', content: 'héllo wörld\r\nsecond line here\r\n' });
      expect(done.result).to.deep.include({
        ...COMMON,
        encoding: 'utf-8',
        bom: false,
        lines: 2,
        words: 5,
        characters: 31,
        line_endings: 'crlf',
        csv: null,
        json: null,
      });
    });

    it('tells lf, cr, mixed and single-line texts apart and counts a last line without a break', async () => {
      const cases: Array<[string, string, number]> = [
        ['a\nb\nc', 'lf', 3],
        ['a\rb\r', 'cr', 2],
        ['a\r\nb\nc\rd', 'mixed', 4],
        ['one line', 'none', 1],
      ];
      for (const [content, endings, lines] of cases) {
        const done = await processed(service, { name: 'lines.txt', content });
        expect(done.result, JSON.stringify(content)).to.deep.include({ line_endings: endings, lines });
      }
    });

    it('summarizes a CSV: delimiter, columns, header and rows, with quoted fields spanning lines', async () => {
      const content = 'name;age;city\r\nalice;30;"Paris\r\nRive Gauche"\r\nbob;25;London\r\ncarol;41;"Rome; Italy"\r\n';
      const done = await processed(service, { name: 'people.csv', content });
      expect(done.content_type).to.equal('text/csv; charset=utf-8');
      expect(done.result!.csv).to.deep.equal({
        delimiter: ';',
        columns: 3,
        header: true,
        rows: 3,
        column_names: ['name', 'age', 'city'],
      });
    });

    it('reads a CSV without a header and a TSV by its tabs', async () => {
      const plain = await processed(service, { name: 'pairs.csv', content: 'alice,paris\nbob,london\ncarol,rome\n' });
      expect(plain.result!.csv).to.deep.equal({
        delimiter: ',',
        columns: 2,
        header: false,
        rows: 3,
        column_names: null,
      });
      const tsv = await processed(service, { name: 'table.tsv', content: 'id\tscore\n1\t9.5\n2\t7\n' });
      expect(tsv.result!.csv).to.deep.equal({
        delimiter: '\t',
        columns: 2,
        header: true,
        rows: 2,
        column_names: ['id', 'score'],
      });
    });

    it('summarizes a CSV renamed .txt or without an extension as a CSV, and a JSON named .csv as JSON', async () => {
      const people =
        'name,born,city\nAda Lovelace,1815,London\n"Hopper, Grace",1906,"New York,\nNY"\nAlan Turing,1912,Wilmslow\n';
      for (const name of ['people.txt', 'people']) {
        const done = await processed(service, { name, content: people });
        expect([done.kind, done.content_type], name).to.deep.equal(['text', 'text/csv; charset=utf-8']);
        expect(done.result, name).to.deep.include({ json: null, warnings: [] });
        expect(done.result!.csv, name).to.deep.equal({
          delimiter: ',',
          columns: 3,
          header: true,
          rows: 3,
          column_names: ['name', 'born', 'city'],
        });
      }
      const json = await processed(service, { name: 'people.csv', content: JSON.stringify([{ name: 'Ada' }, {}]) });
      expect(json.content_type).to.equal('application/json; charset=utf-8');
      expect(json.result).to.deep.include({
        csv: null,
        json: { valid: true, top_level: 'array', keys: null, key_names: null, items: 2, error: null },
      });
    });

    it('checks JSON: validity, top-level type and its key or item count', async () => {
      const object = await processed(service, {
        name: 'config.json',
        content: JSON.stringify({ a: [1, 2, { b: null }], c: 'x\u00e9', d: -1.5e3, e: true }, null, 2),
      });
      expect(object.result!.json).to.deep.equal({
        valid: true,
        top_level: 'object',
        keys: 4,
        key_names: ['a', 'c', 'd', 'e'],
        items: null,
        error: null,
      });
      const array = await processed(service, { name: 'list.json', content: '[1, "two", [3], {"four": 4}]' });
      expect(array.result!.json).to.deep.equal({
        valid: true,
        top_level: 'array',
        keys: null,
        key_names: null,
        items: 4,
        error: null,
      });
    });

    it('processes a file named JSON that is not, with a warning saying where it breaks', async () => {
      const done = await processed(service, { name: 'broken.json', content: '{"a": [1, 2,}' });
      expect(done.status).to.equal('processed');
      expect(done.result!.json).to.deep.include({
        valid: false,
        top_level: null,
        error: 'Line 1, column 13: "}" where a value should come.',
      });
      expect(done.result!.warnings).to.have.length(1);
    });

    it('reads UTF-16 with a byte order mark and without one', async () => {
      const withBom = await processed(service, {
        name: 'wide.txt',
        content: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('héllo wörld\n', 'utf16le')]),
      });
      expect(withBom).to.include({ kind: 'text', content_type: 'text/plain; charset=utf-16le' });
      expect(withBom.result).to.deep.include({ encoding: 'utf-16le', bom: true, words: 2, characters: 12, lines: 1 });
      const bigEndian = await processed(service, {
        name: 'wide-be.txt',
        content: Buffer.from('hello world, big end\n', 'utf16le').swap16(),
      });
      expect(bigEndian.result).to.deep.include({ encoding: 'utf-16be', bom: false, words: 4, characters: 21 });
    });

    it('reads text that is not UTF-8 as windows-1252, with a warning, even when the bad byte comes late', async () => {
      const legacy = await processed(service, {
        name: 'latin1.txt',
        content: Buffer.from('café crème brûlée\n', 'latin1'),
      });
      expect(legacy.result).to.deep.include({ encoding: 'windows-1252', words: 3, characters: 18 });
      expect(legacy.result!.warnings).to.deep.equal([
        'The text is not valid UTF-8 or UTF-16; it was read as windows-1252, a guess for legacy 8-bit text.',
      ]);
      const late = await processed(service, {
        name: 'late.txt',
        content: Buffer.concat([Buffer.alloc(300_000, 'a'), Buffer.from([0x20, 0xe9, 0x0a])]),
      });
      expect(late.content_type).to.equal('text/plain; charset=utf-8');
      expect(late.result).to.deep.include({ encoding: 'windows-1252', words: 2, characters: 300_003, lines: 1 });
      expect(late.result!.warnings).to.have.length(1);
    });

    it('warns when UTF-8 text ends in the middle of a character', async () => {
      const cut = Buffer.from('naïve résumé', 'utf8').subarray(0, -1);
      const done = await processed(service, { name: 'cut.txt', content: cut });
      expect(done.result).to.deep.include({ encoding: 'utf-8', words: 2 });
      expect(done.result!.warnings).to.deep.equal([
        'The text ends in the middle of a UTF-8 character; the file may be truncated.',
      ]);
    });
  });

  describe('PDF processing', () => {
    it('reads the page count, the document information and the first text', async () => {
      const content = pdf(['Hello (PDF) world', 'Second page'], {
        title: 'Quarterly report',
        author: 'Ada',
        producer: 'fixtures.ts',
      });
      const done = await processed(service, { name: 'report.pdf', content });
      expect(done).to.include({ status: 'processed', kind: 'pdf', content_type: 'application/pdf' });
      expect(done.result).to.deep.include({
        ...COMMON,
        pdf_version: '1.4',
        pages: 2,
        title: 'Quarterly report',
        author: 'Ada',
        producer: 'fixtures.ts',
        encrypted: false,
        text: 'Hello (PDF) world Second page',
      });
    });

    it('keeps at most a kilobyte of text', async () => {
      const done = await processed(service, {
        name: 'long.pdf',
        content: pdf(['word '.repeat(300), 'more '.repeat(300)]),
      });
      expect(Buffer.byteLength(done.result!.text as string))
        .to.be.at.most(1024)
        .and.at.least(1000);
      expect(done.result!.title).to.equal(null);
    });

    it('processes a PDF that needs a password, saying so', async () => {
      const done = await processed(service, { name: 'locked.pdf', content: pdf(['secret'], {}, { encrypt: true }) });
      expect(done.status).to.equal('processed');
      expect(done.result).to.deep.include({ encrypted: true, pages: null, text: null });
      expect(done.result!.warnings).to.deep.equal([
        'The PDF needs a password to open: its pages, information and text cannot be read.',
      ]);
    });
  });

  describe('archive processing', () => {
    it('lists a zip from its central directory: entries, sizes, ratio, names and encrypted entries', async () => {
      const content = zip([
        { name: 'readme.txt', content: 'hello' },
        { name: 'data/log.txt', content: 'line\n'.repeat(200), deflate: true },
        { name: 'secret.bin', content: 'xx', encrypted: true },
        { name: '../outside.txt', content: 'never extracted' },
      ]);
      const done = await processed(service, { name: 'bundle.zip', content });
      expect(done).to.include({ status: 'processed', kind: 'archive', content_type: 'application/zip' });
      const result = done.result!;
      expect(result).to.deep.include({ format: 'zip', entries: 4, uncompressed_bytes: 1022, encrypted_entries: 1 });
      expect(result.names).to.deep.equal(['readme.txt', 'data/log.txt', 'secret.bin', '../outside.txt']);
      expect(result.ratio).to.equal(Math.round((1022 / (result.compressed_bytes as number)) * 100) / 100);
      expect(result.warnings).to.deep.equal(['1 entries are encrypted and need a password.']);
    });

    it('walks a tar archive by its headers', async () => {
      const content = tar([
        { name: 'a.txt', content: 'hello' },
        { name: 'dir/b.bin', content: randomBytes(1500) },
      ]);
      const done = await processed(service, { name: 'files.tar', content });
      expect(done.content_type).to.equal('application/x-tar');
      expect(done.result).to.deep.include({
        ...COMMON,
        format: 'tar',
        entries: 2,
        uncompressed_bytes: 1505,
        compressed_bytes: null,
        ratio: null,
        names: ['a.txt', 'dir/b.bin'],
      });
    });

    it('reads what a gzip stream declares without inflating it, and only names other formats', async () => {
      const gzip = await processed(service, { name: 'log.gz', content: gzipSync(randomBytes(5000)) });
      expect(gzip.result).to.deep.include({ format: 'gzip', entries: null, uncompressed_bytes: 5000, names: [] });
      const bzip2 = await processed(service, {
        name: 'x.bz2',
        content: Buffer.concat([Buffer.from('BZh91AY&SY', 'latin1'), randomBytes(64)]),
      });
      expect(bzip2).to.include({ kind: 'archive', content_type: 'application/x-bzip2' });
      expect(bzip2.result).to.deep.include({
        sha256_verified: true,
        format: 'bzip2',
        entries: null,
        names: [],
        ratio: null,
        warnings: [
          'This service does not decompress bzip2: the entries of a tar archive inside (.tar.bz2) are not listed.',
        ],
      });
    });
  });

  describe('audio and video processing', () => {
    it('reads a WAV: container, duration, codec, bitrate, sample rate and channels', async () => {
      const done = await processed(service, { name: 'tone.wav', content: wav(2, 8000, 2) });
      expect(done).to.include({ kind: 'audio', content_type: 'audio/wav' });
      expect(done.result).to.deep.include({
        ...COMMON,
        container: 'WAVE',
        duration_seconds: 2,
        codecs: ['PCM'],
        bitrate: 256000,
        sample_rate: 8000,
        channels: 2,
      });
    });

    it('reads an MP3 from its frames', async () => {
      const done = await processed(service, { name: 'silence.mp3', content: mp3(383) });
      expect(done).to.include({ kind: 'audio', content_type: 'audio/mpeg' });
      expect(done.result).to.deep.include({
        container: 'MPEG',
        codecs: ['MPEG 1 Layer 3'],
        bitrate: 128000,
        sample_rate: 44100,
        channels: 2,
      });
      expect(done.result!.duration_seconds).to.be.closeTo(10, 0.1);
    });

    it('reads an MP4 video: duration, codec and the frame size its track header declares', async () => {
      // Headers only, no frame: nothing to draw, which is said, and not a failure.
      const done = await processed(service, { name: 'clip.mp4', content: mp4(640, 360, 3) });
      expect(done).to.include({ kind: 'video', content_type: 'video/mp4', thumbnail: null, preview: null });
      expect(done.result).to.deep.include({
        sha256_verified: true,
        warnings: ['The video has no frame that could be decoded; it has no thumbnail or preview.'],
        duration_seconds: 3,
        codecs: ['avc1'],
        width: 640,
        height: 360,
        sample_rate: null,
        channels: null,
      });
    });
  });

  describe('other files', () => {
    it('processes bytes of no known kind with the common fields only', async () => {
      const content = Buffer.concat([Buffer.from([0, 1, 2, 3]), randomBytes(2000)]);
      const done = await processed(service, { name: 'blob.bin', content });
      expect(done).to.include({
        status: 'processed',
        kind: 'other',
        content_type: 'application/octet-stream',
        thumbnail: null,
      });
      expect(done.result).to.deep.equal({
        sha256_verified: true,
        bytes_read: content.length,
        warnings: [],
        truncated: false,
      });
    });

    it('takes zip-based office documents as documents, and zip-based packages as archives', async () => {
      const types =
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"><Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>';
      const docx = await processed(service, {
        name: 'letter.docx',
        content: zip([
          { name: '[Content_Types].xml', content: types, deflate: true },
          { name: 'word/document.xml', content: '<w/>' },
        ]),
      });
      expect(docx).to.include({
        kind: 'document',
        content_type: 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
        status: 'processed',
      });
      expect(docx.result).to.deep.include({ format: 'docx', title: null, author: null, macros: false });
      const jar = await processed(service, {
        name: 'app.jar',
        content: zip([{ name: 'META-INF/MANIFEST.MF', content: 'Manifest-Version: 1.0\n' }]),
      });
      expect(jar).to.include({ kind: 'archive', content_type: 'application/java-archive' });
      expect(jar.result).to.deep.include({ format: 'zip', entries: 1 });
    });
  });
});
