// Bounded work per file: crafted inputs that made a parser loop without moving on, hold memory in proportion to
// what the file declares, or ask for work far beyond what they are (scans, frames, directories, pages, boxes),
// end quickly with a clear outcome. The analyses, and the walks that count against the caps, are called directly.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { deflateSync } from 'node:zlib';
import { Readable } from 'node:stream';
import sharp from 'sharp';
import { analyzeArchive } from '../worker/processors/archive.js';
import { analyzeAudio } from '../worker/processors/audio.js';
import type { BlobReader } from '../worker/processors/blobSource.js';
import {
  analyzeImage,
  GIF_MAX_FRAMES,
  JPEG_MAX_SCANS,
  TIFF_MAX_DIRECTORIES,
  WEBP_MAX_FRAMES,
} from '../worker/processors/image.js';
import { imageStructure } from '../worker/processors/imageStructure.js';
import {
  MP4_MAX_BOXES,
  MP4_MAX_BRANDS,
  OGG_MAX_PACKET_PAGES,
  OGG_MAX_PAGES,
  OGG_MAX_STREAMS,
} from '../worker/processors/media.js';
import { mediaStructure } from '../worker/processors/mediaStructure.js';
import { analyzePdf } from '../worker/processors/pdf.js';
import { analyzeVideo } from '../worker/processors/video.js';
import { patchPdfjsWorker, PDFJS_WORKER_FILE } from '../worker/processors/pdfDecodeBudget.js';
import type { Analyzed, AnalysisInput, ProcessingLimits } from '../worker/processors/types.js';
import { deflatedRepeats, mp4, pdf, pdfWithObjectStream, tar, zip } from './support/fixtures.js';
import { rejection } from './support/eventually.js';
import {
  animatedWebp,
  gif,
  isoBox,
  mp4WithBrands,
  mp4WithEmptyBoxes,
  oggOpus,
  progressiveJpeg,
  tiffOfDirectories,
} from './support/hostileFixtures.js';

const LIMITS: ProcessingLimits = { maxImagePixels: 50_000_000, pdfMaxDecodedBytes: 64 * 1024 * 1024 };

const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-bounded-'));
after(() => rm(dir, { recursive: true, force: true }));

/** Runs `analysis` on `content` written to a file, failing if it is still running after `ms` (a stuck loop never ends). */
async function analyze<F>(
  analysis: (input: AnalysisInput) => Promise<Analyzed<F>>,
  name: string,
  content: Buffer,
  contentType: string,
  ms = 5_000,
): Promise<Analyzed<F>> {
  const file = path.join(dir, name);
  await writeFile(file, content);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the analysis of ${name} was still running after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([
      analysis({ source: { path: file }, contentType, size: content.length, limits: LIMITS }),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

describe('tar headers', () => {
  const analyzeTar = (name: string, content: Buffer) => analyze(analyzeArchive, name, content, 'application/x-tar');

  it('fails a header declaring a negative size as corrupt_file at once, where the walk stood still on it', async () => {
    const err = await rejection(
      analyzeTar('negative.tar', tar([{ name: 'a.txt', content: 'hello', sizeField: '-0000001000\0' }])),
    );
    expect(err).to.include({
      code: 'corrupt_file',
      message: 'The tar header at byte 0 is damaged: its size field "-0000001000" is not an octal number.',
    });
  });

  it('fails a size that is not octal, or a base-256 size beyond 2^53, as corrupt_file', async () => {
    const letters = await rejection(
      analyzeTar('letters.tar', tar([{ name: 'a.txt', content: 'hello', sizeField: '00000000zz1\0' }])),
    );
    expect(letters).to.include({
      code: 'corrupt_file',
      message: 'The tar header at byte 0 is damaged: its size field "00000000zz1" is not an octal number.',
    });
    const huge = Buffer.concat([Buffer.from([0x80, 0x00, 0x00, 0x00]), Buffer.alloc(8, 0xff)]);
    const overflow = await rejection(
      analyzeTar('overflow.tar', tar([{ name: 'a.txt', content: 'hello', sizeField: huge }])),
    );
    expect(overflow).to.include({ code: 'corrupt_file' });
    expect(overflow.message).to.match(/size field is a base-256 number beyond 2\^53/);
    const negative = await rejection(
      analyzeTar('negative-256.tar', tar([{ name: 'a.txt', content: 'hello', sizeField: Buffer.alloc(12, 0xff) }])),
    );
    expect(negative).to.include({ code: 'corrupt_file' });
  });

  it('fails a checksum field that is not octal as corrupt_file, naming the field', async () => {
    const content = tar([{ name: 'a.txt', content: 'hello' }]);
    content.write('-00001\0 ', 148, 'latin1');
    const err = await rejection(analyzeTar('checksum.tar', content));
    expect(err).to.include({
      code: 'corrupt_file',
      message: 'The tar header at byte 0 is damaged: its checksum field "-00001" is not an octal number.',
    });
  });

  it('walks the 100,000 headers of a 50 MB tar of empty files in well under the 5 s a read per header took', async () => {
    const content = tar(Array.from({ length: 100_000 }, (_, i) => ({ name: `f${i}`, content: '' })));
    const { fields } = await analyze(analyzeArchive, 'many.tar', content, 'application/x-tar', 2_500);
    expect(fields).to.deep.include({ entries: 100_000, uncompressed_bytes: 0 });
  });

  it('still reads sizes padded with spaces, without a terminator, or in base 256', async () => {
    const base256 = Buffer.concat([Buffer.from([0x80]), Buffer.alloc(10), Buffer.from([5])]);
    for (const sizeField of ['00000000005 ', '          5', '5\0          ', base256]) {
      const { fields } = await analyzeTar('sizes.tar', tar([{ name: 'a.txt', content: 'hello', sizeField }]));
      expect(fields, JSON.stringify(sizeField)).to.deep.include({
        entries: 1,
        uncompressed_bytes: 5,
        names: ['a.txt'],
      });
    }
  });
});

describe('zip directories', () => {
  it('lists the 65,535 entries a zip without zip64 can hold in well under the 6 s two reads per entry took', async () => {
    const content = zip(Array.from({ length: 65_535 }, (_, i) => ({ name: `f${i}` })));
    const { fields } = await analyze(analyzeArchive, 'many.zip', content, 'application/zip', 3_000);
    expect(fields).to.deep.include({ format: 'zip', entries: 65_535, uncompressed_bytes: 0 });
    expect(fields.names.slice(0, 2)).to.deep.equal(['f0', 'f1']);
  });

  it('still fails a zip cut short, or one whose directory points past its end, as corrupt_file', async () => {
    const whole = zip([
      { name: 'a.txt', content: 'hello' },
      { name: 'b.txt', content: 'world' },
    ]);
    expect(
      await rejection(analyze(analyzeArchive, 'cut.zip', whole.subarray(0, whole.length - 30), 'application/zip')),
    ).to.include({ code: 'corrupt_file' });
    const pointsPast = Buffer.from(whole);
    pointsPast.writeUInt32LE(whole.length * 2, whole.length - 6);
    expect(await rejection(analyze(analyzeArchive, 'past.zip', pointsPast, 'application/zip'))).to.include({
      code: 'corrupt_file',
    });
  });
});

describe('MP4 boxes', () => {
  const analyzeMp4 = (name: string, content: Buffer, ms?: number) =>
    analyze(analyzeVideo, name, content, 'video/mp4', ms);
  const clip = mp4(640, 360, 3);
  const ftyp = clip.subarray(0, clip.readUInt32BE(0));
  const rest = clip.subarray(ftyp.length);
  /** A box header of `size` (1: a 64-bit size follows, given by `largeSize`). */
  const boxHeader = (size: number, largeSize?: bigint) => {
    const header = Buffer.alloc(largeSize === undefined ? 8 : 16);
    header.writeUInt32BE(size);
    header.write('free', 4, 'latin1');
    if (largeSize !== undefined) header.writeBigUInt64BE(largeSize, 8);
    return header;
  };

  it('reads the frame size and duration after 100,000 empty boxes in seconds, where a read per box took 15 s', async function () {
    this.timeout(60_000);
    const content = Buffer.concat([ftyp, Buffer.concat(Array.from({ length: 100_000 }, () => boxHeader(8))), rest]);
    const { fields } = await analyzeMp4('many-boxes.mp4', content, 8_000);
    expect(fields).to.deep.include({ duration_seconds: 3, width: 640, height: 360, codecs: ['avc1'] });
  });

  it('counts the boxes music-metadata walks, inside the movie, its tracks and their sample tables too', async () => {
    // ftyp; moov: mvhd, trak (tkhd, mdia: mdhd, hdlr, minf: vmhd, dinf, stbl: stsd, stts, stsc, stsz, stco); mdat.
    expect(await walkMedia(clip)).to.deep.equal({ container: 'iso', boxes: 18, brands: 4 });
    const moovOfEmptyBoxes = isoBox('moov', Buffer.concat(Array.from({ length: 10 }, () => boxHeader(8))));
    expect(await walkMedia(Buffer.concat([ftyp, moovOfEmptyBoxes]))).to.deep.include({ boxes: 12 });
  });

  it('fails an MP4 of more boxes than the cap with too_complex, at the top or inside the movie, before music-metadata walks them', async () => {
    const tooMany = MP4_MAX_BOXES + 1;
    const expected = {
      code: 'too_complex',
      message: `The MP4 file has more than ${MP4_MAX_BOXES} boxes, the most this service reads; it was not read.`,
    };
    expect(await rejection(analyzeMp4('flood.mp4', mp4WithEmptyBoxes(tooMany), 10_000))).to.include(expected);
    const inside = isoBox('moov', Buffer.concat(Array.from({ length: tooMany }, () => boxHeader(8))));
    expect(await rejection(analyzeMp4('inside.mp4', Buffer.concat([ftyp, inside]), 10_000))).to.include(expected);
  });

  it('fails an MP4 whose ftyp lists 150,000 brands with too_complex at once, where dropping repeats held a slot 55 s', async () => {
    expect(await rejection(analyzeMp4('brands.mp4', mp4WithBrands(150_000), 10_000))).to.include({
      code: 'too_complex',
      message: `The MP4 file lists 150000 compatible brands, more than the ${MP4_MAX_BRANDS} this service reads; it was not read.`,
    });
  });

  it('still reads an MP4 listing as many brands as the cap, its container named by them in a bounded string', async () => {
    const { fields } = await analyzeMp4('cap.mp4', mp4WithBrands(MP4_MAX_BRANDS, rest));
    expect(fields).to.deep.include({ duration_seconds: 3, width: 640, height: 360 });
    expect(fields.container!.split('/')).to.have.length(MP4_MAX_BRANDS + 1);
  });

  it('fails a box of 64-bit size 0 or smaller than its header as corrupt_file, and reads a last box of size 0 to the end', async () => {
    for (const [name, header] of [
      ['large-zero.mp4', boxHeader(1, 0n)],
      ['large-eight.mp4', boxHeader(1, 8n)],
      ['size-three.mp4', boxHeader(3)],
    ] as const) {
      expect(await rejection(analyzeMp4(name, Buffer.concat([ftyp, header, rest]))), name).to.include({
        code: 'corrupt_file',
      });
    }
    const { fields } = await analyzeMp4('last-zero.mp4', Buffer.concat([clip, boxHeader(0), Buffer.alloc(100)]));
    expect(fields).to.deep.include({ duration_seconds: 3, width: 640, height: 360 });
  });
});

describe('PDF decoding budget', () => {
  const MIB = 1024 * 1024;
  const spaces = Buffer.alloc(1024, 0x20);
  const analyzeWith = (name: string, content: Buffer, pdfMaxDecodedBytes: number) =>
    writeFile(path.join(dir, name), content).then(() =>
      analyzePdf({
        source: { path: path.join(dir, name) },
        contentType: 'application/pdf',
        size: content.length,
        limits: { ...LIMITS, pdfMaxDecodedBytes },
      }),
    );

  /** Analyses `file` in a fresh Node process (after a small PDF, so pdf.js is loaded): its result, time and peak RSS growth. */
  async function analyzeInFreshProcess(
    file: string,
    warmUp: string,
  ): Promise<{ analyzed: Awaited<ReturnType<typeof analyzePdf>>; ms: number; rssGrowthBytes: number }> {
    const input = (file: string) =>
      JSON.stringify({
        source: { path: file },
        contentType: 'application/pdf',
        size: statSync(file).size,
        limits: LIMITS,
      });
    const script = `
      import { analyzePdf } from ${JSON.stringify(new URL('../worker/processors/pdf.js', import.meta.url).href)};
      await analyzePdf(${input(warmUp)});
      const before = process.resourceUsage().maxRSS;
      const started = performance.now();
      const analyzed = await analyzePdf(${input(file)});
      const ms = performance.now() - started;
      process.stdout.write(JSON.stringify({ analyzed, ms, rssGrowthBytes: (process.resourceUsage().maxRSS - before) * 1024 }));`;
    // With source maps on, as under coverage or when debugging a worker: the patched pdf.js must still load.
    const { stdout } = await promisify(execFile)(process.execPath, [
      '--enable-source-maps',
      '--input-type=module',
      '-e',
      script,
    ]);
    return JSON.parse(stdout) as Awaited<ReturnType<typeof analyzeInFreshProcess>>;
  }

  it('processes a 1 MB PDF whose page inflates to 1 GiB with a warning, in a fraction of the time and memory, with its pages and title', async function () {
    this.timeout(120_000);
    const bomb = path.join(dir, 'bomb.pdf');
    const small = path.join(dir, 'small.pdf');
    await writeFile(
      bomb,
      pdf(['Intro page', { deflated: await deflatedRepeats(spaces, 1024 * MIB) }], { title: 'Bomb' }),
    );
    await writeFile(small, pdf(['Warm-up'], {}, { flate: true }));
    const { analyzed, ms, rssGrowthBytes } = await analyzeInFreshProcess(bomb, small);
    expect(analyzed.fields).to.deep.include({
      pdf_version: '1.4',
      pages: 2,
      title: 'Bomb',
      encrypted: false,
      text: 'Intro page',
    });
    expect(analyzed.warnings).to.deep.equal([
      "The PDF's text was not fully extracted: its content decodes to more than 64 MiB, the limit of this service.",
    ]);
    // Unbounded, pdf.js took 35 s and 2.3 GB to inflate it all and find no text in it.
    expect(ms, 'analysis time in ms').to.be.below(10_000);
    expect(rssGrowthBytes, 'peak RSS growth in bytes').to.be.below(512 * MIB);
  });

  it('also counts what is decoded block by block (a Flate stream behind a PNG predictor), not only what is inflated whole', async () => {
    const row = Buffer.concat([Buffer.from([0]), spaces.subarray(1)]);
    const content = pdf(
      [
        'Intro page',
        { deflated: await deflatedRepeats(row, 8 * MIB), decodeParms: '<< /Predictor 12 /Columns 1023 >>' },
      ],
      { title: 'Rows' },
    );
    const over = await analyzeWith('rows.pdf', content, MIB);
    expect(over.fields).to.deep.include({ pages: 2, title: 'Rows', text: 'Intro page' });
    expect(over.warnings).to.deep.equal([
      "The PDF's text was not fully extracted: its content decodes to more than 1 MiB, the limit of this service.",
    ]);
    expect((await analyzeWith('rows.pdf', content, 64 * MIB)).warnings).to.deep.equal([]);
  });

  it('processes a PDF whose catalog is in an object stream over the budget, saying it could not be opened', async () => {
    const catalog = Buffer.from('1 0 << /Type /Catalog /Pages 2 0 R >>\n');
    const normal = await analyzeWith('objects.pdf', pdfWithObjectStream(deflateSync(catalog)), MIB);
    expect(normal).to.deep.equal({
      fields: {
        pdf_version: '1.5',
        pages: 1,
        title: null,
        author: null,
        producer: null,
        encrypted: false,
        text: 'Compressed catalog',
      },
      warnings: [],
    });
    const padded = await analyzeWith(
      'objects-bomb.pdf',
      pdfWithObjectStream(await deflatedRepeats(spaces, 8 * MIB, catalog)),
      MIB,
    );
    expect(padded).to.deep.equal({
      fields: {
        pdf_version: null,
        pages: null,
        title: null,
        author: null,
        producer: null,
        encrypted: false,
        text: null,
      },
      warnings: ['The PDF could not be opened: its structure decodes to more than 1 MiB, the limit of this service.'],
    });
  });

  it('reads a normal PDF, plain or compressed, as before; a budget smaller than its text leaves the text out', async () => {
    const pages = ['Hello (PDF) world', 'Second page'];
    for (const flate of [false, true]) {
      const { fields, warnings } = await analyzeWith(
        'normal.pdf',
        pdf(pages, { title: 'Report', author: 'Ada' }, { flate }),
        64 * MIB,
      );
      expect(fields, `flate: ${flate}`).to.deep.equal({
        pdf_version: '1.4',
        pages: 2,
        title: 'Report',
        author: 'Ada',
        producer: null,
        encrypted: false,
        text: 'Hello (PDF) world Second page',
      });
      expect(warnings).to.deep.equal([]);
    }
    const tiny = await analyzeWith('normal.pdf', pdf(pages, { title: 'Report' }, { flate: true }), 16);
    expect(tiny.fields).to.deep.include({ pages: 2, title: 'Report', text: null });
    expect(tiny.warnings).to.deep.equal([
      "The PDF's text was not fully extracted: its content decodes to more than 16 bytes, the limit of this service.",
    ]);
  });

  it('patches the installed pdf.js at both of its decoding paths, and refuses loudly a pdf.js it no longer fits', async () => {
    const source = await readFile(PDFJS_WORKER_FILE, 'utf8');
    expect(patchPdfjsWorker(source).split('__chargeDecodedBytes(')).to.have.length(3);
    const upgraded = source.replace(
      '  ensureBuffer(requested) {\n    const buffer = this.buffer;',
      '  ensureBuffer(requested, options) {\n    const buffer = this.buffer;',
    );
    expect(() => patchPdfjsWorker(upgraded)).to.throw(
      /pdfjs-dist changed: .*" {2}ensureBuffer\(requested\) \{" was found nowhere in pdf.worker.mjs/,
    );
  });
});

/** A blob in memory, for the structure walks. */
function bufferReader(bytes: Buffer): BlobReader {
  return {
    read: async (buffer, offset, length, position) => {
      const bytesRead = Math.max(0, Math.min(length, bytes.length - position));
      buffer.set(bytes.subarray(position, position + bytesRead), offset);
      return { bytesRead };
    },
    stream: () => Readable.from([bytes]),
    close: async () => {},
  };
}

const IMAGE_WALK_LIMITS = { jpegScans: JPEG_MAX_SCANS, tiffDirectories: TIFF_MAX_DIRECTORIES };
const MEDIA_WALK_LIMITS = {
  oggPages: OGG_MAX_PAGES,
  oggStreams: OGG_MAX_STREAMS,
  oggPacketPages: OGG_MAX_PACKET_PAGES,
  isoBoxes: MP4_MAX_BOXES,
};
const walkImage = (bytes: Buffer) => imageStructure(bufferReader(bytes), IMAGE_WALK_LIMITS);
const walkMedia = (bytes: Buffer) => mediaStructure(bufferReader(bytes), bytes.length, MEDIA_WALK_LIMITS);

/** `bytes`, a GIF, with its logical screen set to `width`×`height`. */
function withScreen(bytes: Buffer, width: number, height: number): Buffer {
  const copy = Buffer.from(bytes);
  copy.writeUInt16LE(width, 6);
  copy.writeUInt16LE(height, 8);
  return copy;
}

/** `bytes`, a GIF of `gif()`, with its first frame placed at (`left`, `top`). */
function withFrameAt(bytes: Buffer, left: number, top: number): Buffer {
  const copy = Buffer.from(bytes);
  const descriptor = copy.indexOf(0x2c, 13);
  copy.writeUInt16LE(left, descriptor + 1);
  copy.writeUInt16LE(top, descriptor + 3);
  return copy;
}

/** Five frames of 40×30, the first half transparent, joined into an animation by libvips. */
async function animation(format: 'gif' | 'webp'): Promise<Buffer> {
  const frames = await Promise.all(
    ['#ff000080', '#00ff00', '#0000ff', '#ffffff', '#000000'].map((background) =>
      sharp({ create: { width: 40, height: 30, channels: 4, background } })
        .png()
        .toBuffer(),
    ),
  );
  return sharp(frames, { join: { animated: true } })
    .toFormat(format)
    .toBuffer();
}

const analyzeImageFile = (name: string, content: Buffer, ms?: number) =>
  analyze(analyzeImage, name, content, 'image/x-unknown', ms);

describe('JPEG scans', () => {
  const photo = () => sharp({ create: { width: 64, height: 48, channels: 3, background: '#336699' } });

  it('counts the scans of JPEGs as encoders write them: one for a baseline, ten for a progressive one', async () => {
    expect(await walkImage(await photo().jpeg().toBuffer())).to.deep.equal({ format: 'jpeg', scans: 1 });
    expect(await walkImage(await photo().jpeg({ progressive: true }).toBuffer())).to.deep.equal({
      format: 'jpeg',
      scans: 10,
    });
    expect(await walkImage(progressiveJpeg(7))).to.deep.equal({ format: 'jpeg', scans: 7 });
  });

  it('stops counting one scan past the cap, however many follow', async () => {
    expect(await walkImage(progressiveJpeg(40_000, 4096, 4096))).to.deep.equal({
      format: 'jpeg',
      scans: JPEG_MAX_SCANS + 1,
    });
  });

  it('processes a JPEG of 40,000 scans from its header alone, with a warning and no thumbnail, where decoding it took more than the 55 s budget', async () => {
    const { fields, warnings, thumbnail } = await analyzeImageFile(
      'scans.jpg',
      progressiveJpeg(40_000, 4096, 4096),
      10_000,
    );
    expect(fields).to.deep.equal({
      format: 'jpeg',
      width: 4096,
      height: 4096,
      orientation: null,
      alpha: false,
      pages: 1,
      color_space: 'b-w',
      make: null,
      model: null,
      taken_at: null,
      gps: null,
      thumbnail: null,
      preview: null,
    });
    expect(warnings).to.deep.equal([
      `The JPEG has more than ${JPEG_MAX_SCANS} scans, the most this service decodes; its header was read but not its pixels, so it has no thumbnail or preview.`,
    ]);
    expect(thumbnail).to.equal(undefined);
  });

  it('still decodes a JPEG of as many scans as the cap, thumbnail and all', async () => {
    const { fields, warnings } = await analyzeImageFile('cap.jpg', progressiveJpeg(JPEG_MAX_SCANS));
    expect(fields.thumbnail).to.deep.include({ width: 256, height: 256 });
    expect(warnings).to.deep.equal([]);
  });
});

describe('animation frames', () => {
  it('counts the frames of GIFs and WebPs, and reads their canvas, as libvips does', async () => {
    const samples: Array<[string, Buffer]> = [
      ['gif', await animation('gif')],
      ['webp', await animation('webp')],
      ["gif of a maker's screen", withScreen(gif(3), 640, 480)],
      ['gif of a huge screen', withScreen(gif(3), 65_535, 65_535)],
      ['gif of an empty screen', withScreen(gif(3), 0, 0)],
      ['gif whose first frame overflows its screen', withFrameAt(withScreen(gif(3), 10, 10), 20, 5)],
    ];
    for (const [name, bytes] of samples) {
      const { format, pages, width, height, hasAlpha } = await sharp(bytes).metadata();
      expect(await walkImage(bytes), name).to.deep.equal({
        format,
        frames: pages,
        canvas: { width, height, alpha: hasAlpha },
      });
    }
  });

  it('tells a GIF past its frame cap from its own walk, frames, size and transparency, with a warning and no thumbnail', async () => {
    const { fields, warnings } = await analyzeImageFile('frames.gif', gif(GIF_MAX_FRAMES + 1), 10_000);
    expect(fields).to.deep.equal({
      format: 'gif',
      width: 1,
      height: 1,
      orientation: null,
      alpha: false,
      pages: GIF_MAX_FRAMES + 1,
      color_space: 'srgb',
      make: null,
      model: null,
      taken_at: null,
      gps: null,
      thumbnail: null,
      preview: null,
    });
    expect(warnings).to.deep.equal([
      `The GIF has ${GIF_MAX_FRAMES + 1} frames, more than the ${GIF_MAX_FRAMES} this service decodes; its frames were counted but not decoded, so it has no thumbnail or preview.`,
    ]);
  });

  it('tells a WebP of 200,000 frames from its own walk in well under the 55 s libvips took', async () => {
    const { fields, warnings } = await analyzeImageFile('frames.webp', await animatedWebp(200_000), 10_000);
    expect(fields).to.deep.include({
      format: 'webp',
      width: 1,
      height: 1,
      alpha: true,
      pages: 200_000,
      thumbnail: null,
    });
    expect(warnings).to.have.length(1);
  });

  it('still fails an animation past its frame cap with image_too_large when its canvas is over the pixel limit', async () => {
    const wide = await animatedWebp(WEBP_MAX_FRAMES + 1);
    wide.writeUIntLE(16_383, 24, 3); // the VP8X canvas, stored less one: 16384 × 16384
    wide.writeUIntLE(16_383, 27, 3);
    expect(await rejection(analyzeImageFile('wide.webp', wide))).to.include({ code: 'image_too_large' });
  });

  it('hands a WebP of as many frames as the cap to libvips, thumbnail and all', async function () {
    this.timeout(30_000);
    const { fields, warnings } = await analyzeImageFile('cap.webp', await animatedWebp(WEBP_MAX_FRAMES), 20_000);
    expect(fields).to.deep.include({
      pages: WEBP_MAX_FRAMES,
      thumbnail: { width: 1, height: 1, bytes: fields.thumbnail!.bytes },
    });
    expect(warnings).to.deep.equal([]);
  });
});

describe('TIFF directories', () => {
  it('counts the directories of a TIFF, either byte order, classic or BigTIFF', async () => {
    for (const bigEndian of [false, true])
      for (const bigTiff of [false, true])
        expect(
          await walkImage(tiffOfDirectories(3, { bigEndian, bigTiff })),
          JSON.stringify({ bigEndian, bigTiff }),
        ).to.deep.equal({ format: 'tiff', directories: 3 });
  });

  it('ends the chain at a directory that links back to one already seen, as libtiff does', async () => {
    const looped = tiffOfDirectories(3);
    looped.writeUInt32LE(10, looped.length - 4); // the last directory links to the first
    expect(await walkImage(looped)).to.deep.equal({ format: 'tiff', directories: 3 });
  });

  it('fails a TIFF of 600,000 directories with too_complex before libvips reads them, where it took 32 s', async function () {
    this.timeout(30_000);
    expect(await rejection(analyzeImageFile('directories.tif', tiffOfDirectories(600_000), 10_000))).to.include({
      code: 'too_complex',
      message: `The TIFF has more than ${TIFF_MAX_DIRECTORIES} directories (pages), the most this service reads; it was not decoded.`,
    });
  });

  it('still decodes a TIFF of as many directories as the cap', async function () {
    this.timeout(30_000);
    const { fields } = await analyzeImageFile('cap.tif', tiffOfDirectories(TIFF_MAX_DIRECTORIES), 20_000);
    expect(fields).to.deep.include({ format: 'tiff', pages: TIFF_MAX_DIRECTORIES });
  });
});

describe('Ogg pages', () => {
  const analyzeOgg = (name: string, content: Buffer, ms?: number) =>
    analyze(analyzeAudio, name, content, 'audio/ogg', ms);

  it('counts the pages of an Ogg stream to its last, and of a chained file only its first link, as music-metadata reads them', async () => {
    const link = oggOpus(50);
    const counted = { container: 'ogg', pages: 50, streams: 1, packetPages: 1, bytesWithinLimit: link.length };
    expect(await walkMedia(link)).to.deep.equal(counted);
    expect(await walkMedia(Buffer.concat([link, oggOpus(50, { serial: 7 })]))).to.deep.equal({
      ...counted,
      bytesWithinLimit: 2 * link.length,
    });
  });

  it('reads an Ogg of 300,000 pages up to the cap: its codec and channels, a warning instead of its duration', async function () {
    this.timeout(30_000);
    const { fields, warnings } = await analyzeOgg('pages.opus', oggOpus(300_000), 10_000);
    expect(fields).to.deep.equal({
      container: 'Ogg',
      duration_seconds: null,
      codecs: ['Opus'],
      bitrate: null,
      sample_rate: 48_000,
      channels: 2,
      title: null,
      artist: null,
      album: null,
      year: null,
    });
    expect(warnings).to.deep.equal([
      `The Ogg file has more than ${OGG_MAX_PAGES} pages, the most this service reads; its duration and bitrate were not read.`,
    ]);
  });

  it('still reads the duration of an Ogg of as many pages as the cap', async function () {
    this.timeout(30_000);
    const { fields, warnings } = await analyzeOgg('cap.opus', oggOpus(OGG_MAX_PAGES), 10_000);
    expect(fields.duration_seconds).to.be.closeTo((OGG_MAX_PAGES - 2) * 0.02, 0.1);
    expect(warnings).to.deep.equal([]);
  });

  it('fails an Ogg whose packet spans 40,000 pages with too_complex, where joining them took 29 s', async () => {
    expect(await rejection(analyzeOgg('packet.opus', oggOpus(40_000, { continued: true }), 10_000))).to.include({
      code: 'too_complex',
      message: `The Ogg file has a packet spread over more than ${OGG_MAX_PACKET_PAGES} pages, the most this service reads; it was not read.`,
    });
  });

  it('fails an Ogg of more logical streams at once than the cap with too_complex', async () => {
    // Each stream's two header pages, none ended: music-metadata looks at every one of them at each page.
    const streams = Array.from({ length: OGG_MAX_STREAMS + 1 }, (_, serial) => oggOpus(2, { serial }));
    expect(await rejection(analyzeOgg('streams.opus', Buffer.concat(streams)))).to.include({
      code: 'too_complex',
      message: `The Ogg file has more than ${OGG_MAX_STREAMS} logical streams, the most this service reads; it was not read.`,
    });
  });
});

describe('structure walks on damaged files', () => {
  /** A generator of numbers from `seed`, the same each run (mulberry32). */
  function random(seed: number): () => number {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  it('end, without throwing, on every file cut short or overwritten with garbage', async function () {
    this.timeout(60_000);
    const next = random(25);
    const samples: Array<[string, Buffer, (bytes: Buffer) => Promise<unknown>]> = [
      ['jpeg', progressiveJpeg(20, 64, 64), walkImage],
      ['gif', gif(20), walkImage],
      ['webp', await animatedWebp(20), walkImage],
      ['tiff', tiffOfDirectories(20), walkImage],
      ['bigtiff', tiffOfDirectories(20, { bigEndian: true, bigTiff: true }), walkImage],
      ['ogg', oggOpus(20), walkMedia],
      ['mp4', mp4(), walkMedia],
    ];
    for (const [name, whole, walk] of samples) {
      for (let cut = 0; cut <= whole.length; cut += Math.max(1, Math.floor(whole.length / 97))) {
        await walk(whole.subarray(0, cut)).catch((err: Error) => expect.fail(`${name} cut at ${cut}: ${err.message}`));
      }
      for (let round = 0; round < 200; round++) {
        const damaged = Buffer.from(whole);
        const at = Math.floor(next() * damaged.length);
        for (let i = at; i < Math.min(damaged.length, at + 1 + Math.floor(next() * 16)); i++)
          damaged[i] = Math.floor(next() * 256);
        await walk(damaged).catch((err: Error) => expect.fail(`${name} damaged at ${at}: ${err.message}`));
      }
    }
  });
});
