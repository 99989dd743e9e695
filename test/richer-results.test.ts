// What a person expects to see in a result (issue 28): header names and top-level keys, EXIF, media tags, AVI and
// the entries of compressed tars. Files are made at test time by real tools and uploaded through the real API.
import { expect } from 'chai';
import sharp from 'sharp';
import type { File } from '../core/fileRecord.js';
import { gzipSync } from 'node:zlib';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { id3v1, id3v2Title, loopingExif, tarHeader, withApp1 } from './support/richFixtures.js';
import { bmp, mp3 } from './support/fixtures.js';
import { requireProgram, run } from './support/tools.js';
import { startService, uploadFile, waitForStatus, type TestService, type UploadPart } from './support/service.js';

/** Uploads a file and waits until the worker has finished with it. */
async function processed(service: TestService, part: UploadPart): Promise<File> {
  const file = await uploadFile(service.url, part);
  return waitForStatus(service.url, file.id, ['processed', 'failed'], 20_000);
}

describe('richer results', function () {
  this.timeout(60_000);
  let service: TestService;
  /** Where the tools write the files of a test. */
  let dir: string;
  before(async () => {
    service = await startService();
    dir = await mkdtemp(path.join(os.tmpdir(), 'richer-results-'));
  });
  after(async () => {
    await service.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe('CSV, TSV and JSON', () => {
    it("lists a CSV's and a TSV's header names, unquoted, told from the bytes whatever the name", async () => {
      const csv = await processed(service, {
        name: 'export.txt',
        content: 'id,"full name","city, country"\n1,Ada Lovelace,"London, UK"\n2,Alan Turing,"Wilmslow, UK"\n',
      });
      expect(csv.content_type).to.equal('text/csv; charset=utf-8');
      expect(csv.result!.csv).to.deep.equal({
        delimiter: ',',
        columns: 3,
        header: true,
        rows: 2,
        column_names: ['id', 'full name', 'city, country'],
      });
      const tsv = await processed(service, { name: 'scores', content: 'player\tscore\tlevel\nann\t10\t3\nbo\t7\t2\n' });
      expect(tsv.content_type).to.equal('text/tab-separated-values; charset=utf-8');
      expect((tsv.result!.csv as { column_names: string[] }).column_names).to.deep.equal(['player', 'score', 'level']);
    });

    it('lists the first 100 header names of a wide CSV, and counts them all', async () => {
      const names = Array.from({ length: 150 }, (_, i) => `c${i}`);
      const content = `${names.join(',')}\n${names.map((_, i) => i).join(',')}\n`;
      const done = await processed(service, { name: 'wide.csv', content });
      expect(done.result!.csv).to.deep.include({ columns: 150, header: true, column_names: names.slice(0, 100) });
    });

    it('lists the top-level keys of a JSON object in order, unescaped, and none of the nested ones', async () => {
      const content =
        '{"name": "x", "caf\\u00e9": {"inner": 1}, "tab\\there": [1, {"deep": 2}], "\\ud83d\\ude00": null}';
      const done = await processed(service, { name: 'data.bin', content });
      expect(done.content_type).to.equal('application/json; charset=utf-8');
      expect(done.result!.json).to.deep.equal({
        valid: true,
        top_level: 'object',
        keys: 4,
        key_names: ['name', 'café', 'tab\there', '😀'],
        items: null,
        error: null,
      });
    });

    it('lists the first 100 keys of a large object, and no keys for an array or invalid JSON', async () => {
      const object = Object.fromEntries(Array.from({ length: 250 }, (_, i) => [`key${i}`, i]));
      const large = await processed(service, { name: 'large.json', content: JSON.stringify(object) });
      expect(large.result!.json).to.deep.include({
        keys: 250,
        key_names: Array.from({ length: 100 }, (_, i) => `key${i}`),
      });
      const array = await processed(service, { name: 'list.json', content: '[{"a": 1}, {"b": 2}]' });
      expect(array.result!.json).to.deep.include({ top_level: 'array', key_names: null });
      const broken = await processed(service, { name: 'broken.json', content: '{"a": 1, "b": }' });
      expect(broken.result!.json).to.deep.include({ valid: false, key_names: null });
    });
  });

  describe('images', () => {
    const photo = () => sharp({ create: { width: 64, height: 48, channels: 3, background: '#4080c0' } });

    it("reads the camera, the time with its offset and the place from a JPEG's EXIF", async () => {
      const jpeg = await photo()
        .jpeg()
        .withExif({
          IFD0: { Make: 'Canon', Model: 'Canon EOS 5D Mark IV' },
          IFD2: { DateTimeOriginal: '2024:05:17 14:03:22', OffsetTimeOriginal: '+02:00' },
          IFD3: {
            GPSLatitudeRef: 'S',
            GPSLatitude: '33/1 51/1 3144/100',
            GPSLongitudeRef: 'W',
            GPSLongitude: '70/1 40/1 1800/100',
          },
        })
        .toBuffer();
      const done = await processed(service, { name: 'IMG_0001.JPG', content: jpeg });
      expect(done.result).to.deep.include({
        format: 'jpeg',
        make: 'Canon',
        model: 'Canon EOS 5D Mark IV',
        taken_at: '2024-05-17T14:03:22+02:00',
        gps: { lat: -33.8587333, lon: -70.6716667 },
        warnings: [],
      });
    });

    it('gives the local time without an offset when the camera recorded none, and null where EXIF is silent', async () => {
      const local = await photo()
        .webp()
        .withExif({ IFD0: { Make: 'NIKON CORPORATION' }, IFD2: { DateTimeOriginal: '2023:12:31 23:59:59' } })
        .toBuffer();
      const done = await processed(service, { name: 'local.webp', content: local });
      expect(done.result).to.deep.include({
        format: 'webp',
        make: 'NIKON CORPORATION',
        model: null,
        taken_at: '2023-12-31T23:59:59',
        gps: null,
      });
      const bare = await processed(service, { name: 'bare.png', content: await photo().png().toBuffer() });
      expect(bare.result).to.deep.include({ make: null, model: null, taken_at: null, gps: null });
    });

    it('reads only what is in bounds of EXIF directories that loop or point past the end, and processes the image', async () => {
      const jpeg = withApp1(await photo().jpeg().toBuffer(), loopingExif());
      const done = await processed(service, { name: 'loop.jpg', content: jpeg });
      expect(done.status).to.equal('processed');
      expect(done.result).to.deep.include({
        width: 64,
        height: 48,
        make: null,
        model: 'Acme',
        taken_at: null,
        gps: null,
      });
    });
  });

  describe('BMP', () => {
    /** A 64×48 test picture as ffmpeg writes it in `pixelFormat`, and its pixels as ffmpeg decodes them (RGB). */
    async function ffmpegBmp(context: Mocha.Context, pixelFormat: string): Promise<{ bmp: Buffer; rgb: Buffer }> {
      const ffmpeg = requireProgram(context, 'ffmpeg');
      const file = path.join(dir, `${pixelFormat}.bmp`);
      await run(ffmpeg, [
        '-loglevel',
        'error',
        '-f',
        'lavfi',
        '-i',
        'testsrc=size=64x48',
        '-frames:v',
        '1',
        '-pix_fmt',
        pixelFormat,
        file,
      ]);
      const rgb = path.join(dir, `${pixelFormat}.rgb`);
      await run(ffmpeg, ['-loglevel', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', rgb]);
      return { bmp: await readFile(file), rgb: await readFile(rgb) };
    }

    it('reads the size of 24-bit, 16-bit, 8-bit palette and 1-bit BMPs, and thumbnails their pixels as ffmpeg decodes them', async function () {
      for (const pixelFormat of ['bgr24', 'rgb565', 'pal8', 'monob']) {
        const { bmp, rgb } = await ffmpegBmp(this, pixelFormat);
        const done = await processed(service, { name: `${pixelFormat}.bmp`, content: bmp });
        expect(done, pixelFormat).to.deep.include({ status: 'processed', kind: 'image', content_type: 'image/bmp' });
        expect(done.result, pixelFormat).to.deep.include({
          format: 'bmp',
          width: 64,
          height: 48,
          alpha: false,
          pages: 1,
          make: null,
          gps: null,
          thumbnail: done.result!.thumbnail,
          warnings: [],
        });
        expect(done.result!.thumbnail, pixelFormat).to.deep.include({ width: 64, height: 48 });
        expect(done.result!.preview, pixelFormat).to.deep.include({ width: 64, height: 48 });
        // The thumbnail holds the picture, upright: a white and a red pixel that any flip would move are where ffmpeg has them, within WebP's loss.
        const thumbnail = Buffer.from(await (await fetch(done.thumbnail!)).arrayBuffer());
        const pixels = await sharp(thumbnail).removeAlpha().raw().toBuffer();
        for (const at of [7 * 64 + 58, 10 * 64 + 52]) {
          const expected = [...rgb.subarray(at * 3, at * 3 + 3)];
          const actual = [...pixels.subarray(at * 3, at * 3 + 3)];
          actual.forEach((value, c) =>
            expect(Math.abs(value - expected[c]!), `${pixelFormat} at ${at}`).to.be.below(24),
          );
        }
      }
    });

    it('reads the header of an RLE-compressed BMP with a warning and no renderings', async () => {
      const done = await processed(service, {
        name: 'rle.bmp',
        content: bmp(20, 10, { bitsPerPixel: 8, compression: 1, pixels: Buffer.alloc(1024 + 64) }),
      });
      expect(done.result).to.deep.include({ format: 'bmp', width: 20, height: 10, thumbnail: null, preview: null });
      expect(done.result!.warnings).to.deep.equal([
        'The BMP is compressed (RLE, JPEG or PNG inside); its header was read but not its pixels, so it has no thumbnail or preview.',
      ]);
    });

    it('fails a BMP declaring 100,000×100,000 pixels with image_too_large, and one cut short with corrupt_file', async () => {
      const huge = await processed(service, {
        name: 'huge.bmp',
        content: bmp(100_000, 100_000, { pixels: Buffer.alloc(0) }),
      });
      expect(huge).to.deep.include({ status: 'failed', result: null, thumbnail: null });
      expect(huge.error).to.deep.equal({
        code: 'image_too_large',
        message: `The image declares 100000×100000 pixels, more than the limit of 50000000; it was not decoded.`,
      });
      const short = await processed(service, {
        name: 'short.bmp',
        content: bmp(20, 10, { pixels: Buffer.alloc(100) }),
      });
      expect(short.error).to.deep.equal({
        code: 'corrupt_file',
        message: 'The BMP ends before the last of the pixel rows its header declares.',
      });
    });
  });

  describe('audio and video', () => {
    const TAGS = { title: 'Test Tone', artist: 'Ada Lovelace', album: 'Analytical Engine', year: 1843 };
    const METADATA = ['-metadata', 'title=Test Tone', '-metadata', 'artist=Ada Lovelace'];
    const ALBUM = ['-metadata', 'album=Analytical Engine', '-metadata', 'date=1843'];

    /** What ffmpeg makes of `inputs` and `options` as `name`, in this run's directory. */
    async function ffmpegFile(context: Mocha.Context, name: string, args: string[]): Promise<Buffer> {
      const ffmpeg = requireProgram(context, 'ffmpeg');
      const file = path.join(dir, name);
      await run(ffmpeg, ['-loglevel', 'error', '-y', ...args, file]);
      return readFile(file);
    }
    const tone = ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '1.5'];

    it('reads title, artist, album and year from ID3v2, Vorbis comments, FLAC, MP4 ilst and RIFF INFO tags', async function () {
      const expected: Array<[string, string, number]> = [
        ['tone.mp3', 'MPEG', 1.536],
        ['tone.ogg', 'Ogg', 1.5],
        ['tone.opus', 'Ogg', 1.5],
        ['tone.flac', 'FLAC', 1.5],
        ['tone.m4a', 'M4A/isom/iso2', 1.521],
        ['tone.wav', 'WAVE', 1.5],
      ];
      for (const [name, container, duration] of expected) {
        const content = await ffmpegFile(this, name, [...tone, ...METADATA, ...ALBUM]);
        const done = await processed(service, { name, content });
        expect(done, name).to.include({ status: 'processed', kind: 'audio' });
        expect(done.result, name).to.deep.include({ container, duration_seconds: duration, ...TAGS });
      }
    });

    it('reads ID3v1 at the end of an MP3, and gives null tags for a file without any', async function () {
      const bare = await ffmpegFile(this, 'bare.mp3', [...tone, '-id3v2_version', '0', '-write_xing', '0']);
      const untagged = await processed(service, { name: 'bare.mp3', content: bare });
      expect(untagged.result).to.deep.include({ title: null, artist: null, album: null, year: null });
      const tagged = Buffer.concat([bare, id3v1('Old Tune', 'Someone', 'Some Album', '1999')]);
      const done = await processed(service, { name: 'v1.mp3', content: tagged });
      expect(done.result).to.deep.include({ title: 'Old Tune', artist: 'Someone', album: 'Some Album', year: 1999 });
    });

    it('cuts a 2 MiB title to a kilobyte, saying the result was truncated', async () => {
      const done = await processed(service, { name: 'long.mp3', content: id3v2Title(2 * 1024 * 1024, mp3(100)) });
      expect(done.result).to.deep.include({ title: 'a'.repeat(1024), truncated: true, warnings: [] });
    });

    it('rounds every duration to the millisecond, an MP4 video and Matroska included', async function () {
      const video = [
        '-f',
        'lavfi',
        '-i',
        'testsrc=size=160x120:rate=25',
        '-f',
        'lavfi',
        '-i',
        'sine=sample_rate=44100',
      ];
      const mp4 = await ffmpegFile(this, 'clip.mp4', [
        ...video,
        '-t',
        '2',
        '-c:v',
        'mpeg4',
        '-c:a',
        'aac',
        ...METADATA,
      ]);
      const done = await processed(service, { name: 'clip.mp4', content: mp4 });
      // music-metadata reads 2.023219954648526 s (the AAC track's priming and padding).
      expect(done.result).to.deep.include({ duration_seconds: 2.023, width: 160, height: 120, title: 'Test Tone' });
      const mkv = await ffmpegFile(this, 'clip.mkv', [...video, '-t', '1.2345', '-c:v', 'mpeg4', '-c:a', 'libopus']);
      const matroska = await processed(service, { name: 'clip.mkv', content: mkv });
      const seconds = matroska.result!.duration_seconds as number;
      expect(Number(seconds.toFixed(3)), String(seconds)).to.equal(seconds);
    });

    it('reads an AVI: duration, frame size and rate, codecs as FourCC and format tag, and its INFO tags', async function () {
      const avi = await ffmpegFile(this, 'clip.avi', [
        ...['-f', 'lavfi', '-i', 'testsrc=size=160x120:rate=25', '-f', 'lavfi', '-i', 'sine=sample_rate=22050'],
        ...['-t', '2', '-c:v', 'mpeg4', '-c:a', 'pcm_s16le', '-ac', '2', ...METADATA, ...ALBUM],
      ]);
      const done = await processed(service, { name: 'clip.avi', content: avi });
      expect(done).to.include({ status: 'processed', kind: 'video', content_type: 'video/vnd.avi' });
      expect(done.result).to.deep.include({
        container: 'AVI',
        duration_seconds: 2,
        codecs: ['FMP4', 'PCM'],
        bitrate: Math.round((avi.length * 8) / 2),
        sample_rate: 22050,
        channels: 2,
        width: 160,
        height: 120,
        frame_rate: 25,
        ...TAGS,
        warnings: [],
      });
    });

    it('fails an AVI without its main header as corrupt_file, in our words', async () => {
      const riff = Buffer.alloc(12 + 12 + 16);
      riff.write('RIFFxxxxAVI LIST', 0, 'latin1');
      riff.writeUInt32LE(riff.length - 8, 4);
      riff.writeUInt32LE(4 + 16, 16);
      riff.write('hdrlJUNK', 20, 'latin1');
      riff.writeUInt32LE(8, 28);
      const done = await processed(service, { name: 'empty.avi', content: riff });
      expect(done).to.deep.include({
        status: 'failed',
        error: { code: 'corrupt_file', message: 'The AVI has no main header (avih); it is damaged or truncated.' },
      });
    });
  });

  describe('compressed tars', () => {
    const LONG_NAME = `docs/${'n'.repeat(120)}.txt`;

    /** A tree of three files (one with a name too long for a plain tar header) packed by `tar` with `options`. */
    async function tarred(context: Mocha.Context, name: string, options: string[]): Promise<Buffer> {
      const tar = requireProgram(context, 'tar');
      const tree = path.join(dir, `tree-${name}`);
      await mkdir(path.join(tree, 'docs'), { recursive: true });
      await writeFile(path.join(tree, 'a.txt'), 'hello\n');
      await writeFile(path.join(tree, 'docs', 'b.csv'), 'x,y\n'.repeat(1000));
      await writeFile(path.join(tree, LONG_NAME), '');
      const file = path.join(dir, name);
      // GNU format, names sorted: the listing is the same on every machine.
      await run(tar, ['--format=gnu', '--sort=name', ...options, '-cf', file, '-C', tree, 'a.txt', 'docs']);
      return readFile(file);
    }

    const ENTRIES = ['a.txt', 'docs/', 'docs/b.csv', LONG_NAME];

    it('lists the entries of a .tar.gz, a .tgz and a .tar.zst as they decompress, long names included', async function () {
      for (const [name, options, format] of [
        ['pack.tar.gz', ['-z'], 'tar.gz'],
        ['pack.tgz', ['-z'], 'tar.gz'],
        ['pack.tar.zst', ['--zstd'], 'tar.zst'],
      ] as const) {
        if (format === 'tar.zst') requireProgram(this, 'zstd');
        const content = await tarred(this, name, [...options]);
        const done = await processed(service, { name, content });
        expect(done, name).to.include({ status: 'processed', kind: 'archive' });
        expect(done.result, name).to.deep.include({
          format,
          entries: 4,
          names: ENTRIES,
          compressed_bytes: content.length,
          uncompressed_bytes: 6 + 4000,
          ratio: Math.round((4006 / content.length) * 100) / 100,
          warnings: [],
        });
      }
    });

    it('tells a tar inside from other compressed bytes by its headers, not by the name', async function () {
      const zstd = requireProgram(this, 'zstd');
      await writeFile(path.join(dir, 'notes.txt'), 'not a tar\n'.repeat(100));
      await run(zstd, ['-q', '-f', path.join(dir, 'notes.txt'), '-o', path.join(dir, 'notes.tar.zst')]);
      const plain = await processed(service, {
        name: 'notes.tar.zst',
        content: await readFile(path.join(dir, 'notes.tar.zst')),
      });
      expect(plain.result).to.deep.include({ format: 'zstd', entries: null, names: [], uncompressed_bytes: 1000 });
      const renamed = await processed(service, { name: 'backup.bin', content: await tarred(this, 'x.tar.gz', ['-z']) });
      expect(renamed.result).to.deep.include({ format: 'tar.gz', names: ENTRIES });
    });

    it('fails a .tar.gz whose second header is damaged as corrupt_file, as a plain tar', async () => {
      const damaged = tarHeader('b.txt', 0);
      damaged[0] = 'c'.charCodeAt(0);
      const content = gzipSync(Buffer.concat([tarHeader('a.txt', 0), damaged, Buffer.alloc(1024)]));
      const done = await processed(service, { name: 'damaged.tgz', content });
      expect(done).to.deep.include({
        status: 'failed',
        error: { code: 'corrupt_file', message: 'The tar header at byte 512 is damaged (checksum mismatch).' },
      });
    });

    it('says that the entries of a .tar.bz2 and a .tar.xz are not listed', async function () {
      requireProgram(this, 'bzip2');
      requireProgram(this, 'xz');
      for (const [name, option, format] of [
        ['pack.tar.bz2', '-j', 'bzip2'],
        ['pack.tar.xz', '-J', 'xz'],
      ] as const) {
        const done = await processed(service, { name, content: await tarred(this, name, [option]) });
        expect(done.result, name).to.deep.include({ format, entries: null, names: [] });
        expect(done.result!.warnings, name).to.deep.equal([
          `This service does not decompress ${format}: the entries of a tar archive inside (${name.slice(4)}) are not listed.`,
        ]);
      }
    });
  });
});
