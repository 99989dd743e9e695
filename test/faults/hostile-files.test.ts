// Hostile files against a real worker process, one case at a time: each file must end as expected, on its first
// attempt, within a bound far below what it cost before (counted once it is uploaded); the worker keeps its pid, its
// process tree stays under the chart's memory limit, and an innocent file uploaded beside it is processed.
// HOSTILE_TABLE=1 prints the table, with how long each job held its slot by the worker's log.
import { expect } from 'chai';
import { once } from 'node:events';
import { createGzip } from 'node:zlib';
import sharp from 'sharp';
import type { File } from '../../core/fileRecord.js';
import { rssBytesOf } from '../../core/procfs.js';
import { eventually } from '../support/eventually.js';
import {
  bmp,
  deflatedRepeats,
  matroska,
  mp3,
  pdf,
  pdfOf,
  pdfWithInfoInObjectStream,
  pngDeclaring,
  tar,
  zip,
} from '../support/fixtures.js';
import {
  animatedWebp,
  gif,
  mp4WithBrands,
  mp4WithEmptyBoxes,
  oggOpus,
  progressiveJpeg,
  tiffOfDirectories,
} from '../support/hostileFixtures.js';
import { storedFiles } from '../support/leftovers.js';
import { id3v2Title, loopingExif, lyingAvi, tarHeader, withApp1 } from '../support/richFixtures.js';
import { parseLogLines } from '../support/logs.js';
import { killStartedProcesses, processTree, startWorkerProcess, type Started } from '../support/processes.js';
import { startService, uploadFile, waitForStatus, type TestService, type UploadPart } from '../support/service.js';

const MIB = 1024 * 1024;
/** worker.resources.limits.memory in the chart. */
const CHART_WORKER_MEMORY_LIMIT = 1280 * MIB;

type Expected = { failed: string } | { warning: RegExp } | { processed: (file: File) => void } | 'deleted';

interface HostileCase {
  what: string;
  /** The hostile file, or several uploaded at once. */
  files: () => Promise<UploadPart[]>;
  expected: Expected;
  /** What the bug it guards against cost, and the bound now. */
  withinSeconds: number;
}

/** A PDF whose page tree holds itself. */
const cyclicPdf = () =>
  pdfOf([
    '<< /Type /Catalog /Pages 2 0 R >>',
    '<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>',
    '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>',
  ]);

async function gzipOfZeros(bytes: number, head: Buffer = Buffer.alloc(0)): Promise<Buffer> {
  const gzip = createGzip({ level: 9 });
  const chunks: Buffer[] = [];
  gzip.on('data', (chunk: Buffer) => chunks.push(chunk));
  gzip.write(head);
  const block = Buffer.alloc(16 * MIB);
  for (let left = bytes; left > 0; left -= block.length) if (!gzip.write(block)) await once(gzip, 'drain');
  gzip.end();
  await once(gzip, 'end');
  return Buffer.concat(chunks);
}

const negativeTar = () => tar([{ name: 'a.txt', content: 'hello', sizeField: '-0000001000\0' }]);

const CASES: HostileCase[] = [
  {
    what: 'a 50 MiB CSV of commas (one record of 52 M fields)',
    files: async () => [
      { name: 'commas.csv', content: Buffer.concat([Buffer.from('x'), Buffer.alloc(50 * MIB, ',')]) },
    ],
    expected: {
      processed: (file) =>
        expect(file.result).to.deep.include({
          csv: { delimiter: ',', columns: 50 * MIB + 1, header: false, rows: 1, column_names: null },
        }),
    },
    withinSeconds: 30,
  },
  {
    what: 'a CSV of 25 M fields (1 M records of 25)',
    files: async () => [{ name: 'fields.csv', content: `${'a,'.repeat(24)}a\n`.repeat(1_000_000) }],
    expected: {
      processed: (file) =>
        expect(file.result).to.deep.include({
          csv: { delimiter: ',', columns: 25, header: false, rows: 1_000_000, column_names: null },
        }),
    },
    withinSeconds: 30,
  },
  {
    what: 'a 50 MiB CSV header of 50,000 names of 1,000 characters',
    files: async () => [
      {
        name: 'names.csv',
        content: `${Array.from({ length: 50_000 }, (_, i) => `${i}`.padStart(1000, 'n')).join(',')}\n${'1,'.repeat(49_999)}1\n`,
      },
    ],
    expected: {
      processed: (file) => {
        const csv = file.result!.csv as { columns: number; header: boolean; column_names: string[] };
        expect(csv).to.include({ columns: 50_000, header: true });
        expect(csv.column_names).to.have.length(100);
        expect(csv.column_names[99]).to.equal('99'.padStart(1000, 'n').slice(0, 256));
      },
    },
    withinSeconds: 30,
  },
  {
    what: 'a JSON object whose first key is 20 MiB long, then 300,000 keys',
    files: async () => [
      {
        name: 'keys.json',
        content: `{"${'k'.repeat(20 * MIB)}":0,${Array.from({ length: 300_000 }, (_, i) => `"${i}":[{"a":${i}}]`).join(',')}}`,
      },
    ],
    expected: {
      processed: (file) => {
        const json = file.result!.json as { keys: number; key_names: string[] };
        expect(json.keys).to.equal(300_001);
        expect(json.key_names).to.deep.equal(['k'.repeat(256), ...Array.from({ length: 99 }, (_, i) => `${i}`)]);
      },
    },
    withinSeconds: 20,
  },
  {
    what: 'a JPEG whose EXIF directories claim 65,535 entries, loop and point past the end',
    files: async () => [
      {
        name: 'exif-loop.jpg',
        content: withApp1(
          await sharp({ create: { width: 32, height: 32, channels: 3, background: '#000' } })
            .jpeg()
            .toBuffer(),
          loopingExif(),
        ),
      },
    ],
    expected: {
      processed: (file) =>
        expect(file.result).to.deep.include({ make: null, model: 'Acme', taken_at: null, gps: null }),
    },
    withinSeconds: 5,
  },
  {
    what: 'a 54-byte BMP declaring 100,000×100,000 pixels',
    files: async () => [{ name: 'huge.bmp', content: bmp(100_000, 100_000, { pixels: Buffer.alloc(0) }) }],
    expected: { failed: 'image_too_large' },
    withinSeconds: 5,
  },
  {
    what: 'a BMP declaring 7,000×7,000 pixels (within the limit) of 32 bits, with none stored',
    files: async () => [{ name: 'empty.bmp', content: bmp(7000, 7000, { bitsPerPixel: 32, pixels: Buffer.alloc(0) }) }],
    expected: { failed: 'corrupt_file' },
    withinSeconds: 5,
  },
  {
    what: 'an AVI whose headers claim 4 GiB, a billion streams, 2^32 frames, 2^31-pixel frames and 100,000 chunks',
    files: async () => [{ name: 'lying.avi', content: lyingAvi() }],
    expected: {
      processed: (file) =>
        expect(file.result).to.deep.include({
          container: 'AVI',
          duration_seconds: 0xffffffff,
          codecs: ['H264'],
          width: 0x7fffffff,
          height: 0x7fffffff,
          frame_rate: 1,
          title: null,
        }),
    },
    withinSeconds: 5,
  },
  {
    what: 'an MP3 whose ID3v2 title is 15 MiB, just under the tag cap',
    files: async () => [{ name: 'title.mp3', content: id3v2Title(15 * MIB, mp3(100)) }],
    expected: {
      processed: (file) => expect(file.result).to.deep.include({ title: 'a'.repeat(1024), truncated: true }),
    },
    withinSeconds: 10,
  },
  {
    what: 'an MP3 whose ID3v2 title is 50 MiB',
    files: async () => [{ name: 'title.mp3', content: id3v2Title(50 * MIB, mp3(100)) }],
    expected: {
      processed: (file) => {
        expect(file.result).to.deep.include({ container: 'MPEG', title: null, sample_rate: 44100 });
        expect(file.result!.warnings).to.include(
          `The ID3v2 tag is ${50 * MIB + 21} bytes, more than the ${16 * MIB} this service reads; its tags were not read.`,
        );
      },
    },
    withinSeconds: 10,
  },
  {
    what: 'a 1 MB PDF whose page inflates to 1 GiB of spaces',
    files: async () => [
      {
        name: 'bomb.pdf',
        content: pdf(['Intro', { deflated: await deflatedRepeats(Buffer.alloc(1024, 0x20), 1024 * MIB) }]),
      },
    ],
    expected: { warning: /text was not fully extracted: its content decodes to more than 64 MiB/ },
    withinSeconds: 15,
  },
  {
    what: 'a tar whose entry declares a negative size',
    files: async () => [{ name: 'negative.tar', content: negativeTar() }],
    expected: { failed: 'corrupt_file' },
    withinSeconds: 10,
  },
  {
    what: 'four such tars at once, one per job slot',
    files: async () => Array.from({ length: 4 }, (_, i) => ({ name: `negative-${i}.tar`, content: negativeTar() })),
    expected: { failed: 'corrupt_file' },
    withinSeconds: 10,
  },
  {
    what: 'a 7000×7000 PNG deleted while it is processed',
    files: async () => [
      {
        name: 'huge.png',
        content: await sharp({ create: { width: 7000, height: 7000, channels: 3, background: '#336699' } })
          .png()
          .toBuffer(),
      },
    ],
    expected: 'deleted',
    withinSeconds: 20,
  },
  {
    what: 'a PNG declaring 100000×100000 pixels',
    files: async () => [{ name: 'bomb.png', content: pngDeclaring(100_000, 100_000) }],
    expected: { failed: 'image_too_large' },
    withinSeconds: 10,
  },
  {
    what: 'a GIF of 100,000 frames',
    files: async () => [{ name: 'frames.gif', content: gif(100_000) }],
    expected: {
      processed: (file) => expect(file.result).to.deep.include({ format: 'gif', pages: 100_000, width: 1, height: 1 }),
    },
    withinSeconds: 10,
  },
  {
    what: 'a zip of 65,535 entries',
    files: async () => [
      { name: 'many.zip', content: zip(Array.from({ length: 65_535 }, (_, i) => ({ name: `f${i}` }))) },
    ],
    expected: { warning: /65535 entries/ },
    withinSeconds: 15,
  },
  {
    what: 'a zip of one entry at 1000:1',
    files: async () => [
      { name: 'ratio.zip', content: zip([{ name: 'zeros', content: Buffer.alloc(10 * MIB), deflate: true }]) },
    ],
    expected: { warning: /like a decompression bomb/ },
    withinSeconds: 10,
  },
  {
    what: 'a gzip stream of 1 GiB of zeros',
    files: async () => [{ name: 'zeros.gz', content: await gzipOfZeros(1024 * MIB) }],
    expected: { warning: /like a decompression bomb/ },
    withinSeconds: 20,
  },
  {
    what: 'a tar.gz whose one entry is 2 GiB of zeros (2 MB compressed)',
    files: async () => [
      { name: 'bomb.tar.gz', content: await gzipOfZeros(2048 * MIB, tarHeader('zeros.bin', 2048 * MIB)) },
    ],
    expected: {
      processed: (file) => {
        expect(file.result).to.deep.include({ format: 'tar.gz', entries: null, names: ['zeros.bin'], ratio: null });
        expect(file.result!.warnings).to.have.length(1);
        expect((file.result!.warnings as string[])[0]).to.match(
          /like a decompression bomb.*the 1 entries before that were listed/,
        );
      },
    },
    withinSeconds: 20,
  },
  {
    what: 'a JSON array nested 1,000,000 deep',
    files: async () => [{ name: 'deep.json', content: `${'['.repeat(1_000_000)}${']'.repeat(1_000_000)}` }],
    expected: {
      processed: (file) =>
        expect(file.result).to.deep.include({
          json: { valid: true, top_level: 'array', keys: null, key_names: null, items: 1, error: null },
        }),
    },
    withinSeconds: 10,
  },
  {
    what: 'a PDF whose page tree holds itself',
    files: async () => [{ name: 'cyclic.pdf', content: cyclicPdf() }],
    expected: { failed: 'corrupt_file' },
    withinSeconds: 10,
  },
  {
    what: 'an MP4 of 500,000 empty boxes',
    files: async () => [{ name: 'boxes.mp4', content: mp4WithEmptyBoxes(500_000) }],
    expected: { failed: 'too_complex' },
    withinSeconds: 10,
  },
  {
    what: 'a 1.6 MB progressive JPEG of 40,000 scans',
    files: async () => [{ name: 'scans.jpg', content: progressiveJpeg(40_000, 4096, 4096) }],
    expected: { warning: /more than 100 scans.*no thumbnail/ },
    withinSeconds: 10,
  },
  {
    what: 'four such JPEGs at once, one per job slot',
    files: async () => {
      const content = progressiveJpeg(40_000, 4096, 4096);
      return Array.from({ length: 4 }, (_, i) => ({ name: `scans-${i}.jpg`, content }));
    },
    expected: { warning: /more than 100 scans.*no thumbnail/ },
    withinSeconds: 15,
  },
  {
    what: 'a 600 KB MP4 whose ftyp lists 150,000 brands',
    files: async () => [{ name: 'brands.mp4', content: mp4WithBrands(150_000) }],
    expected: { failed: 'too_complex' },
    withinSeconds: 10,
  },
  {
    what: 'a 10 MB animated WebP of 200,000 frames',
    files: async () => [{ name: 'frames.webp', content: await animatedWebp(200_000) }],
    expected: {
      processed: (file) => {
        expect(file.result).to.deep.include({ format: 'webp', pages: 200_000, width: 1, height: 1, thumbnail: null });
        expect(file.result!.warnings).to.deep.equal([
          'The WebP has 200000 frames, more than the 10000 this service decodes; its frames were counted but not decoded, so it has no thumbnail or preview.',
        ]);
      },
    },
    withinSeconds: 10,
  },
  {
    what: 'a 23 MB GIF of 1,000,000 frames',
    files: async () => [{ name: 'frames.gif', content: gif(1_000_000) }],
    expected: {
      processed: (file) =>
        expect(file.result).to.deep.include({ format: 'gif', pages: 1_000_000, width: 1, height: 1, thumbnail: null }),
    },
    withinSeconds: 10,
  },
  {
    what: 'an 87 MB Ogg of 3,000,000 pages',
    files: async () => [{ name: 'pages.opus', content: oggOpus(3_000_000) }],
    expected: {
      processed: (file) => {
        expect(file.result).to.deep.include({ codecs: ['Opus'], channels: 2, duration_seconds: null });
        expect((file.result!.warnings as string[]).join(' ')).to.match(/more than 100000 pages/);
      },
    },
    withinSeconds: 15,
  },
  {
    what: 'a 1.2 MB Ogg whose 40,000 pages make one packet',
    files: async () => [{ name: 'packet.opus', content: oggOpus(40_000, { continued: true }) }],
    expected: { failed: 'too_complex' },
    withinSeconds: 10,
  },
  {
    what: 'a 68 MB TIFF of 600,000 directories',
    files: async () => [{ name: 'directories.tif', content: tiffOfDirectories(600_000) }],
    expected: { failed: 'too_complex' },
    withinSeconds: 15,
  },
  {
    what: 'a 2 KB zip whose entry name is 1,023 letters and an emoji',
    files: async () => [{ name: 'emoji.zip', content: zip([{ name: `${'a'.repeat(1023)}😀`, content: 'x' }]) }],
    expected: {
      processed: (file) => expect(file.result).to.deep.include({ names: ['a'.repeat(1023)], truncated: true }),
    },
    withinSeconds: 10,
  },
  {
    what: 'a 3.7 KB PDF whose Title, Author and Producer inflate to 1 MB each in an object stream',
    files: async () => [
      {
        name: 'packed.pdf',
        content: pdfWithInfoInObjectStream({
          Title: 'T'.repeat(MIB),
          Author: 'A'.repeat(MIB),
          Producer: 'P'.repeat(MIB),
        }),
      },
    ],
    expected: { processed: (file) => expect(file.result).to.include({ title: 'T'.repeat(1024), truncated: true }) },
    withinSeconds: 15,
  },
  {
    what: 'a 3 MB PDF whose Title, Author and Producer are 1 MB strings, read by ranges',
    files: async () => [
      {
        name: 'strings.pdf',
        content: pdf(['Hello'], { title: 'T'.repeat(MIB), author: 'A'.repeat(MIB), producer: 'P'.repeat(MIB) }),
      },
    ],
    expected: { processed: (file) => expect(file.result).to.include({ producer: 'P'.repeat(1024), truncated: true }) },
    withinSeconds: 20,
  },
  {
    what: 'a 42 MB Matroska of 42 tracks whose codec ids are 1 MB each',
    files: async () => [
      { name: 'codecs.mkv', content: matroska(Array.from({ length: 42 }, (_, i) => `V_${i}_${'X'.repeat(MIB)}`)) },
    ],
    expected: {
      processed: (file) => expect(Buffer.byteLength(JSON.stringify(file.result))).to.be.at.most(64 * 1024),
    },
    withinSeconds: 15,
  },
];

/** How long the worker's job for `fileId` took (its `job` log line's duration_ms), in seconds. */
const jobSeconds = (workerOutput: string, fileId: string): number =>
  Math.max(
    0,
    ...parseLogLines(workerOutput)
      .filter((line) => line.msg === 'job' && line.file_id === fileId)
      .map((line) => Number(line.duration_ms) / 1000),
  );

const outcomeOf = (file: File): string =>
  file.status === 'failed'
    ? `failed / ${file.error!.code}`
    : `processed${(file.result!.warnings as string[]).length > 0 ? ', with a warning' : ''}`;

interface Row {
  what: string;
  outcome: string;
  attempts: string;
  seconds: number;
  /** The longest a hostile file's job held its slot, from the worker's log. */
  slotSeconds: number;
  peakMib: number;
  /** The largest stored result among the files, in bytes of JSON. */
  resultBytes: number;
}

describe('hostile files against a real worker process', function () {
  this.timeout(120_000);
  let service: TestService;
  let worker: Started;
  let workerPid: number;
  let admin: string;
  const rows: Row[] = [];

  before(async () => {
    service = await startService({ worker: false, jobTimeoutMs: 60_000, env: { MAX_UPLOAD_BYTES: '96MiB' } });
    ({ worker, admin } = await startWorkerProcess({
      QUEUE_NAME: service.queueName,
      WORKER_CONCURRENCY: '4',
      PARSER_MAX_RSS_BYTES: '256MiB',
      JOB_TIMEOUT_MS: '60000',
      // For its `job` lines: how long each job held its slot.
      LOG_LEVEL: 'info',
    }));
    workerPid = worker.child.pid!;
  });

  after(async () => {
    if (process.env.HOSTILE_TABLE) {
      const lines = rows.map(
        (row) =>
          `| ${row.what} | ${row.outcome} | ${row.attempts} | ${row.seconds.toFixed(1)} s | ${row.slotSeconds.toFixed(1)} s | ${row.resultBytes} B | ${row.peakMib} MiB | no |`,
      );
      process.stdout.write(
        `\n| file | outcome | attempts | time | slot held | result | worker tree peak RSS | worker restarted |\n|---|---|---|---:|---:|---:|---:|---|\n${lines.join('\n')}\n`,
      );
    }
    worker?.child.kill('SIGTERM');
    await worker?.exited;
    await service?.close();
    killStartedProcesses();
  });

  /** Jobs of `kind` the worker has ended, whatever their outcome. */
  const jobsEnded = async (kind: string): Promise<number> => {
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    return [
      ...metrics.matchAll(
        new RegExp(`^jobs_processed_total\\{queue="[^"]+",kind="${kind}",outcome="\\w+"\\} (\\d+)`, 'gm'),
      ),
    ].reduce((sum, [, count]) => sum + Number(count), 0);
  };

  /** The largest RSS of the worker's whole process tree (worker and parsers) while `work` runs. */
  async function peakTreeRss<T>(work: () => Promise<T>): Promise<{ value: T; peak: number }> {
    let peak = 0;
    const sample = () =>
      (peak = Math.max(
        peak,
        processTree(workerPid).reduce((sum, pid) => sum + (rssBytesOf(pid) ?? 0), 0),
      ));
    const sampler = setInterval(sample, 20);
    try {
      const value = await work();
      sample();
      return { value, peak };
    } finally {
      clearInterval(sampler);
    }
  }

  for (const hostile of CASES) {
    it(`ends ${hostile.what} as expected, at its first attempt, with the worker up and an innocent file processed`, async () => {
      const parts = await hostile.files();
      const imageJobsBefore = await jobsEnded('image');
      let started = Date.now();
      /** The file deleted while it is processed: nothing of it may be left (other cases' thumbnails may be). */
      let deletedId = '';
      const { value: files, peak } = await peakTreeRss(async () => {
        const uploaded = await Promise.all(parts.map((part) => uploadFile(service.url, part)));
        // From here on the time is the worker's: an upload of 87 MB takes seconds of its own.
        started = Date.now();
        const innocent = await uploadFile(service.url, { name: 'innocent.txt', content: 'nothing to see here\n' });
        if (hostile.expected === 'deleted') {
          deletedId = uploaded[0]!.id;
          await waitForStatus(service.url, uploaded[0]!.id, ['processing'], 20_000);
          expect((await fetch(`${service.url}/files/${uploaded[0]!.id}/`, { method: 'DELETE' })).status).to.equal(204);
          // The job ends, `superseded` (its outcome found no row) or `processed` (it finished before the DELETE).
          await eventually(
            async () => (await jobsEnded('image')) > imageJobsBefore,
            'the worker is done with it',
            hostile.withinSeconds * 1000,
          );
        }
        const innocentDone = await waitForStatus(
          service.url,
          innocent.id,
          ['processed', 'failed'],
          hostile.withinSeconds * 1000,
        );
        expect(innocentDone.status, 'the innocent file').to.equal('processed');
        if (hostile.expected === 'deleted') return [];
        return Promise.all(
          uploaded.map((file) =>
            waitForStatus(service.url, file.id, ['processed', 'failed'], hostile.withinSeconds * 1000),
          ),
        );
      });
      const seconds = (Date.now() - started) / 1000;

      for (const file of files) {
        const expected = hostile.expected;
        expect(file.attempts, 'attempts').to.equal(1);
        if (expected === 'deleted') continue;
        if ('failed' in expected) expect([file.status, file.error?.code]).to.deep.equal(['failed', expected.failed]);
        else expect(file.status, JSON.stringify(file.error)).to.equal('processed');
        if ('warning' in expected) expect((file.result!.warnings as string[]).join(' ')).to.match(expected.warning);
        if ('processed' in expected) expected.processed(file);
      }
      if (hostile.expected === 'deleted')
        expect(
          (await storedFiles()).filter(
            (stored) => (stored.includes(deletedId) && stored.includes('.thumbnail')) || stored.includes('.part'),
          ),
        ).to.deep.equal([]);
      expect(seconds, 'seconds').to.be.below(hostile.withinSeconds);
      expect(peak, 'peak RSS of the worker tree').to.be.below(CHART_WORKER_MEMORY_LIMIT);
      expect(worker.child.exitCode, 'the worker is still running').to.equal(null);
      expect(worker.child.pid).to.equal(workerPid);
      rows.push({
        what: hostile.what,
        outcome: files.length === 0 ? 'deleted, nothing left behind' : [...new Set(files.map(outcomeOf))].join(', '),
        attempts: files.length === 0 ? '1' : [...new Set(files.map((file) => file.attempts))].join(', '),
        seconds,
        slotSeconds: Math.max(0, ...files.map((file) => jobSeconds(worker.output(), file.id))),
        peakMib: Math.round(peak / MIB),
        resultBytes: Math.max(0, ...files.map((file) => JSON.stringify(file.result ?? null).length)),
      });
    });
  }

  it('is healthy and ready after them all', async () => {
    expect((await fetch(`${admin}/healthz`)).status).to.equal(200);
    expect((await fetch(`${admin}/readyz`)).status).to.equal(200);
  });
});
