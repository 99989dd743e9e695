// The pictures README.md shows (docs/previews/<kind>.webp) are the service's own previews of real files made here:
// with UPDATE_PREVIEWS=1 this test writes them; otherwise it checks that each kind still renders a preview and that
// the picture in the repository is one (a WebP of the size the service makes now), so README never shows what the
// service no longer does.
import { expect } from 'chai';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { REPOSITORY } from '../scripts/helm.js';
import { pdfOf } from './support/fixtures.js';
import { startService, uploadFile, waitForStatus, type TestService } from './support/service.js';
import { convertedDocuments } from './support/documents.js';
import { findProgram, requireProgram, run } from './support/tools.js';

const PREVIEWS = path.join(REPOSITORY, 'docs', 'previews');
const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-readme-previews-'));
after(() => rm(dir, { recursive: true, force: true }));

async function ffmpegMade(name: string, args: string[]): Promise<Buffer> {
  const file = path.join(dir, name);
  await run('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args, file]);
  return readFileSync(file);
}

/** A landscape as a camera would give it: a sky, a sun and hills, 1600 × 1000. */
const photo = (): Promise<Buffer> =>
  sharp(
    Buffer.from(
      `<svg xmlns="http://www.w3.org/2000/svg" width="1600" height="1000">
        <defs><linearGradient id="sky" x2="0" y2="1"><stop offset="0" stop-color="#3a7bd5"/><stop offset="1" stop-color="#f6d365"/></linearGradient></defs>
        <rect width="1600" height="1000" fill="url(#sky)"/>
        <circle cx="1150" cy="330" r="120" fill="#fff3b0"/>
        <path d="M0 760 Q 400 520 800 740 T 1600 700 V 1000 H 0 Z" fill="#2f6b3a"/>
        <path d="M0 860 Q 500 700 1000 860 T 1600 840 V 1000 H 0 Z" fill="#1f4d2a"/>
      </svg>`,
    ),
  )
    .jpeg({ quality: 90 })
    .toBuffer();

/** A one-page report: a title, a few lines and a bar chart, in Helvetica. */
function report(): Buffer {
  const bars = [120, 180, 150, 240, 300, 270]
    .map((height, n) => `0.23 0.48 0.84 rg ${90 + n * 75} 200 50 ${height} re f`)
    .join('\n');
  const lines = ['Uploads grew by a third this quarter.', 'Every file was scanned, read and previewed.']
    .map((line, n) => `BT /F1 14 Tf 72 ${650 - n * 22} Td (${line}) Tj ET`)
    .join('\n');
  const content = `BT /F1 28 Tf 72 710 Td (Quarterly report) Tj ET\n${lines}\n${bars}\n0 0 0 RG 72 195 m 540 195 l S`;
  return pdfOf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>',
    `<< /Length ${content.length} >>\nstream\n${content}\nendstream`,
    '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
  ]);
}

/** One real file of each kind README shows (a document made by LibreOffice, which the worker then needs too). */
const FILES: Record<string, () => Promise<{ name: string; content: Buffer }>> = {
  document: async () => {
    const made = await convertedDocuments(findProgram('soffice')!, {
      text: ['docx'],
      spreadsheet: [],
      presentation: [],
    });
    return { name: 'minutes.docx', content: made.get('text.docx')! };
  },
  image: async () => ({ name: 'landscape.jpg', content: await photo() }),
  pdf: async () => ({ name: 'report.pdf', content: report() }),
  video: async () => ({
    name: 'clip.mp4',
    content: await ffmpegMade('clip.mp4', [
      ...['-f', 'lavfi', '-i', 'testsrc2=duration=6:size=1280x720:rate=25'],
      ...['-pix_fmt', 'yuv420p'],
    ]),
  }),
  audio: async () => ({
    name: 'chirp.mp3',
    content: await ffmpegMade('chirp.mp3', [
      ...['-f', 'lavfi', '-i', "aevalsrc='sin(2*PI*(220+110*t)*t)*(0.3+0.7*abs(sin(PI*t/2)))':d=8"],
    ]),
  }),
};

describe("README.md's previews (docs/previews)", function () {
  this.timeout(120_000);
  let service: TestService;
  before(async function () {
    for (const program of ['ffmpeg', 'pdftoppm', 'prlimit', 'soffice']) requireProgram(this, program);
    service = await startService();
  });
  after(() => service?.close());

  for (const [kind, make] of Object.entries(FILES)) {
    it(`shows the service's preview of ${/^[aeiou]/.test(kind) ? 'an' : 'a'} ${kind} file`, async () => {
      const uploaded = await uploadFile(service.url, await make());
      const done = await waitForStatus(service.url, uploaded.id, ['processed', 'failed'], 60_000);
      expect(done, JSON.stringify(done.error)).to.include({ status: 'processed', kind });
      const response = await fetch(done.preview!);
      expect(response.status).to.equal(200);
      const made = Buffer.from(await response.arrayBuffer());
      const size = await sharp(made).metadata();
      expect(size.format).to.equal('webp');
      const picture = path.join(PREVIEWS, `${kind}.webp`);
      if (process.env.UPDATE_PREVIEWS === '1') {
        mkdirSync(PREVIEWS, { recursive: true });
        writeFileSync(picture, made);
      }
      expect(existsSync(picture), `${picture}: make it with UPDATE_PREVIEWS=1`).to.equal(true);
      const shown = await sharp(readFileSync(picture)).metadata();
      expect({ format: shown.format, width: shown.width, height: shown.height }).to.deep.equal({
        format: 'webp',
        width: size.width,
        height: size.height,
      });
    });
  }
});
