import { expect } from 'chai';
import sharp from 'sharp';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { File } from '../core/fileRecord.js';
import { TEST_ENV } from './support/env.js';
import { eventually } from './support/eventually.js';
import { pdf, pdfOf, truncated, zip } from './support/fixtures.js';
import { expectProblem } from './support/problems.js';
import { webpSize } from './support/webp.js';
import { startService, uploadFile, waitForStatus, type TestService, type UploadPart } from './support/service.js';
import { requireProgram, run } from './support/tools.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-renderings-'));
after(() => rm(dir, { recursive: true, force: true }));

/** A file made by ffmpeg from its test sources (`lavfi`), read back. */
async function ffmpegMade(name: string, args: string[]): Promise<Buffer> {
  const file = path.join(dir, name);
  await run('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args, file]);
  return readFileSync(file);
}

/** A one-page PDF whose page is `box` points square, with `content` as its content stream. */
const onePagePdf = (box: number, content: string): Buffer =>
  pdfOf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 ${box} ${box}] /Contents 4 0 R >>`,
    `<< /Length ${content.length} >>\nstream\n${content}\nendstream`,
  ]);

async function processed(service: TestService, part: UploadPart, timeoutMs = 30_000): Promise<File> {
  const file = await uploadFile(service.url, part);
  return waitForStatus(service.url, file.id, ['processed', 'failed'], timeoutMs);
}

const TOOLS = new Set(['ffmpeg', 'pdftoppm', 'prlimit', 'timeout', 'unshare']);

/** Tools still running on a blob of these tests (or a copy in this worker's parser directories), anywhere on the machine. */
function toolsOnOurFiles(): string[] {
  return readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .flatMap((pid) => {
      try {
        const argv = readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0');
        const ours = argv.some(
          (arg) => arg.startsWith(TEST_ENV.storageDir) || arg.includes(`fp-parser-${process.pid}-`),
        );
        return TOOLS.has(path.basename(argv[0]!)) && ours ? [argv.join(' ')] : [];
      } catch {
        return [];
      }
    });
}

/** The tools' directories left in this worker's parser directories. */
const toolDirectories = (): string[] =>
  readdirSync(os.tmpdir())
    .filter((name) => name.startsWith(`fp-parser-${process.pid}-`))
    .flatMap((parser) => {
      try {
        return readdirSync(path.join(os.tmpdir(), parser)).filter((name) => name.startsWith('fp-tool-'));
      } catch {
        return [];
      }
    });

describe('renderings of PDFs, videos and audio', function () {
  this.timeout(120_000);
  let service: TestService;
  before(async function () {
    for (const program of ['ffmpeg', 'pdftoppm', 'prlimit']) requireProgram(this, program);
    service = await startService();
  });
  after(() => service?.close());

  it("draws a PDF's first page into a WebP thumbnail (256 px) and preview (1024 px)", async () => {
    const done = await processed(service, { name: 'letter.pdf', content: pdf(['First page', 'Second page']) });
    expect(done).to.include({ status: 'processed', kind: 'pdf' });
    expect(done.preview).to.equal(`${service.url}/files/${done.id}/preview`);
    // A letter page, 612 × 792 pt, into the boxes.
    const preview = await webpSize(done.preview);
    expect(preview.height).to.equal(1024);
    expect(preview.width).to.be.within(790, 793);
    const thumbnail = await webpSize(done.thumbnail);
    expect(thumbnail.height).to.equal(256);
    expect(thumbnail.width).to.be.within(197, 199);
  });

  it('draws a poster frame of a video into the boxes, never enlarging a small one', async () => {
    const hd = await ffmpegMade('hd.mp4', ['-f', 'lavfi', '-i', 'testsrc=duration=5:size=1280x720:rate=25']);
    const small = await ffmpegMade('small.mp4', ['-f', 'lavfi', '-i', 'testsrc=duration=5:size=640x360:rate=25']);
    const [large, little] = await Promise.all([
      processed(service, { name: 'hd.mp4', content: hd }),
      processed(service, { name: 'small.mp4', content: small }),
    ]);
    expect(large).to.include({ status: 'processed', kind: 'video' });
    expect(large.result).to.deep.include({ width: 1280, height: 720, warnings: [] });
    expect(await webpSize(large.preview)).to.deep.equal({ width: 1024, height: 576 });
    expect(await webpSize(large.thumbnail)).to.deep.equal({ width: 256, height: 144 });
    expect(await webpSize(little.preview)).to.deep.equal({ width: 640, height: 360 });
    expect(await webpSize(little.thumbnail)).to.deep.equal({ width: 256, height: 144 });
  });

  it('draws the waveform of audio', async () => {
    const tone = await ffmpegMade('tone.mp3', ['-f', 'lavfi', '-i', 'sine=frequency=440:duration=3']);
    const done = await processed(service, { name: 'tone.mp3', content: tone });
    expect(done).to.include({ status: 'processed', kind: 'audio' });
    expect(done.result!.warnings).to.deep.equal([]);
    expect(await webpSize(done.preview)).to.deep.equal({ width: 1024, height: 256 });
    expect(await webpSize(done.thumbnail)).to.deep.equal({ width: 256, height: 64 });
  });

  it('draws the waveform of the first 10 minutes of a longer recording, and says so', async () => {
    const long = await ffmpegMade('long.mp3', [
      ...['-f', 'lavfi', '-i', 'sine=frequency=220:duration=660:sample_rate=8000'],
      ...['-b:a', '8k'],
    ]);
    const done = await processed(service, { name: 'long.mp3', content: long });
    expect(done.status, JSON.stringify(done.error)).to.equal('processed');
    expect(done.result!.warnings).to.deep.equal(['The waveform shows the first 10 minutes of the audio.']);
    expect(await webpSize(done.preview)).to.deep.equal({ width: 1024, height: 256 });
  });

  it("decodes a HEIC photo with libheif's heif-convert, which sharp cannot, into both renderings; a cut one fails alone", async function () {
    requireProgram(this, 'heif-enc');
    requireProgram(this, 'heif-convert');
    const png = path.join(dir, 'photo.png');
    await sharp({ create: { width: 1200, height: 800, channels: 3, background: '#3a7bd5' } })
      .png()
      .toFile(png);
    await run('heif-enc', ['-q', '80', '-o', path.join(dir, 'photo.heic'), png]);
    const heic = readFileSync(path.join(dir, 'photo.heic'));
    const [photo, cut] = await Promise.all([
      processed(service, { name: 'photo.heic', content: heic }),
      processed(service, { name: 'cut.heic', content: truncated(heic, 0.6) }),
    ]);
    expect(photo, JSON.stringify(photo.error)).to.include({ status: 'processed', kind: 'image' });
    expect(photo.result).to.deep.include({ format: 'heif', width: 1200, height: 800, warnings: [] });
    expect(await webpSize(photo.preview)).to.deep.equal({ width: 1024, height: 683 });
    expect(await webpSize(photo.thumbnail)).to.deep.equal({ width: 256, height: 171 });
    expect(cut).to.include({ status: 'failed', thumbnail: null, preview: null });
    expect(cut.error).to.deep.equal({
      code: 'render_failed',
      message: 'Could not decode the HEIC image: the file is damaged or in a form the tool cannot read (exit code 1).',
    });
  });

  it('has no rendering of a kind it does not draw, and answers 404 for both', async () => {
    const done = await processed(service, { name: 'a.zip', content: zip([{ name: 'a.txt', content: 'a' }]) });
    expect(done).to.include({ status: 'processed', thumbnail: null, preview: null });
    for (const rendering of ['thumbnail', 'preview'])
      await expectProblem(await fetch(`${service.url}/files/${done.id}/${rendering}`), 404, 'not_found');
  });

  describe('hostile files', () => {
    it('draws a page of 200,000 × 200,000 pt as cheaply as any other', async () => {
      const started = Date.now();
      const done = await processed(service, {
        name: 'huge-page.pdf',
        content: onePagePdf(200_000, '0 0 1 rg 0 0 100000 100000 re f'),
      });
      expect(done.status, JSON.stringify(done.error)).to.equal('processed');
      expect(await webpSize(done.preview)).to.deep.equal({ width: 1024, height: 1024 });
      expect(await webpSize(done.thumbnail)).to.deep.equal({ width: 256, height: 256 });
      expect(Date.now() - started).to.be.below(10_000);
    });

    it('draws the first frame of a video whose header claims far more than it holds', async () => {
      const clip = await ffmpegMade('two-seconds.mp4', [
        '-f',
        'lavfi',
        '-i',
        'testsrc=duration=2:size=640x360:rate=25',
      ]);
      // The movie header (version 0: timescale, then duration) says 1,000 s: the poster's 3 s are past the end.
      const mvhd = clip.indexOf('mvhd');
      clip.writeUInt32BE(clip.readUInt32BE(mvhd + 16) * 1_000, mvhd + 20);
      const done = await processed(service, { name: 'liar.mp4', content: clip });
      expect(done.status, JSON.stringify(done.error)).to.equal('processed');
      expect(done.result!.duration_seconds).to.equal(1_000);
      expect(await webpSize(done.preview)).to.deep.equal({ width: 640, height: 360 });
    });

    it('fails a video cut short, alone, in our words, and renders the next one', async () => {
      const clip = await ffmpegMade('faststart.mp4', [
        ...['-f', 'lavfi', '-i', 'testsrc=duration=5:size=640x360:rate=25'],
        ...['-movflags', '+faststart'],
      ]);
      const cut = await processed(service, { name: 'cut.mp4', content: truncated(clip, 0.3) });
      expect([cut.status, cut.error?.code]).to.deep.equal(['failed', 'corrupt_file']);
      expect(cut.error!.message).not.to.match(/ffmpeg|\/tmp|fp-tool/);
      const next = await processed(service, { name: 'whole.mp4', content: clip });
      expect(next.status).to.equal('processed');
      expect(await webpSize(next.preview)).to.deep.equal({ width: 640, height: 360 });
    });

    it('draws the waveform of a WAV whose header claims hours of sound it does not have', async () => {
      const wav = await ffmpegMade('short.wav', [...['-f', 'lavfi', '-i', 'sine=duration=2'], ...['-ar', '8000']]);
      // The data chunk's size says 2 GiB (37 hours at 8000 16-bit samples a second).
      const dataAt = wav.indexOf('data');
      wav.writeUInt32LE(0x7fff_fff0, dataAt + 4);
      wav.writeUInt32LE(0x7fff_fff0 + dataAt, 4);
      const started = Date.now();
      const done = await processed(service, { name: 'liar.wav', content: wav });
      expect(done.status, JSON.stringify(done.error)).to.equal('processed');
      expect(await webpSize(done.preview)).to.deep.equal({ width: 1024, height: 256 });
      expect(Date.now() - started).to.be.below(20_000);
    });
  });
});

describe('renderings past the time a job has', function () {
  this.timeout(60_000);
  let service: TestService;
  before(async function () {
    for (const program of ['pdftoppm', 'prlimit']) requireProgram(this, program);
    // A job of 2 s: its parsing, and so its tools, get 1.8 s.
    service = await startService({ jobTimeoutMs: 2_000, jobRetries: 0 });
  });
  after(() => service?.close());

  it('fails a page that takes longer to draw with timeout, leaves no tool or file behind, and goes on', async () => {
    // 150,000 strokes: poppler draws 100,000 in 3.5 s of CPU time here, pdf.js reads them for text in a few hundred ms.
    const strokes = Array.from(
      { length: 150_000 },
      (_, i) => `${i % 600} ${(i * 7) % 800} m ${(i * 13) % 600} ${(i * 3) % 800} l S`,
    ).join('\n');
    const done = await processed(service, { name: 'strokes.pdf', content: onePagePdf(800, strokes) });
    expect([done.status, done.error?.code], JSON.stringify(done.error)).to.deep.equal(['failed', 'timeout']);
    expect(done.error!.message).to.equal(
      "The tool that had to render the PDF's first page took longer than the time left for this file; it was stopped.",
    );
    await eventually(
      () => toolsOnOurFiles().length === 0 && toolDirectories().length === 0,
      'the tool and its directory gone',
      5_000,
    );
    const next = await processed(service, { name: 'next.pdf', content: pdf(['Still working']) });
    expect(next.status).to.equal('processed');
    expect(next.preview).to.be.a('string');
  });
});
