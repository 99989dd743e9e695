// Parsers read a blob where it lies. Behind a URL (a bucket's presigned GET), they fetch the ranges they need and
// no more: a real HTTP server serves generated files as an object store does and counts the bytes it sends.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { gzipSync } from 'node:zlib';
import type { BlobSource } from '../core/storage/index.js';
import { analyzeArchive } from '../worker/processors/archive.js';
import { analyzeAudio } from '../worker/processors/audio.js';
import { openBlob } from '../worker/processors/blobSource.js';
import { analyzeDocument } from '../worker/processors/document.js';
import { analyzeImage } from '../worker/processors/image.js';
import { analyzePdf } from '../worker/processors/pdf.js';
import { analyzeText } from '../worker/processors/text.js';
import { analyzeVideo } from '../worker/processors/video.js';
import { ProcessingError, type Analyzed, type AnalysisInput } from '../worker/processors/types.js';
import { compoundFile, ooxml } from './support/documents.js';
import { rejection } from './support/eventually.js';
import { mp4, pdfOf, png, tar, truncated, wav, zip } from './support/fixtures.js';
import { freePort } from './support/net.js';

const MIB = 1024 * 1024;
const LIMITS = { maxImagePixels: 50_000_000, pdfMaxDecodedBytes: 64 * MIB };

interface TestServer {
  url: string;
  close(): Promise<void>;
}

/** An HTTP server on a free port that answers every request with `answer`. */
async function startServer(answer: http.RequestListener): Promise<TestServer> {
  const server = http.createServer(answer);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/bucket/blobs/ab/object?X-Amz-Signature=secret`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

interface BlobServer extends TestServer {
  /** Bytes of content sent in bodies so far. */
  bytesSent: number;
  /** How it answers a request. */
  answer: http.RequestListener;
}

/** `content` served as an object store serves a GET: the Range asked (206, or 416 from its end on), else all of it. */
async function serveBlob(content: Buffer): Promise<BlobServer> {
  const counted = { bytesSent: 0 };
  const answer: http.RequestListener = (request, response) => {
    const range = /^bytes=(\d+)-(\d*)$/.exec(request.headers.range ?? '');
    if (!range) {
      counted.bytesSent += content.length;
      response.writeHead(200, { 'Content-Length': content.length }).end(content);
      return;
    }
    const start = Number(range[1]);
    if (start >= content.length) {
      response.writeHead(416, { 'Content-Range': `bytes */${content.length}` }).end();
      return;
    }
    const end = Math.min(range[2] ? Number(range[2]) : Infinity, content.length - 1);
    counted.bytesSent += end - start + 1;
    response
      .writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${content.length}`, 'Content-Length': end - start + 1 })
      .end(content.subarray(start, end + 1));
  };
  return Object.assign(counted, { answer }, await startServer(answer));
}

const analyze = <F>(
  analysis: (input: AnalysisInput) => Promise<Analyzed<F>>,
  source: BlobSource,
  content: Buffer,
  contentType: string,
): Promise<Analyzed<F>> => analysis({ source, contentType, size: content.length, limits: LIMITS });

/** `analysis` of `content` served by a fresh server, and the bytes that server sent. */
async function analyzeServed<F>(
  analysis: (input: AnalysisInput) => Promise<Analyzed<F>>,
  content: Buffer,
  contentType: string,
): Promise<Analyzed<F> & { bytesSent: number }> {
  const server = await serveBlob(content);
  try {
    return { ...(await analyze(analysis, { url: server.url }, content, contentType)), bytesSent: server.bytesSent };
  } finally {
    await server.close();
  }
}

const copiesLeft = () => readdirSync(os.tmpdir()).filter((name) => name.startsWith('fp-blob-'));

describe('analyses of a blob behind a URL', function () {
  this.timeout(60_000);

  it('list a 20 MiB zip from its central directory, fetching under 1% of it', async () => {
    const entries = Array.from({ length: 20 }, (_, i) => ({ name: `part-${i}.bin`, content: randomBytes(MIB) }));
    const content = zip(entries);
    const { fields, bytesSent } = await analyzeServed(analyzeArchive, content, 'application/zip');
    expect(fields).to.deep.include({ format: 'zip', entries: 20, uncompressed_bytes: 20 * MIB, encrypted_entries: 0 });
    expect(fields.names).to.deep.equal(entries.map((entry) => entry.name));
    expect(bytesSent)
      .to.be.above(0)
      .and.below(content.length / 100);
  });

  it('walk a tar by its headers, jumping over 20 MiB of data', async () => {
    const content = tar(
      Array.from({ length: 5 }, (_, i) => ({ name: `part-${i}.bin`, content: randomBytes(4 * MIB) })),
    );
    const { fields, bytesSent } = await analyzeServed(analyzeArchive, content, 'application/x-tar');
    expect(fields).to.deep.include({ format: 'tar', entries: 5, uncompressed_bytes: 20 * MIB });
    expect(bytesSent).to.be.below(content.length / 50);
  });

  it('read an MP4 whose moov comes after 20 MiB of media from its headers, fetching under 1% of it', async () => {
    const content = mp4(1280, 720, 7, { media: randomBytes(20 * MIB), moovLast: true });
    const { fields, bytesSent } = await analyzeServed(analyzeVideo, content, 'video/mp4');
    expect(fields).to.deep.include({ duration_seconds: 7, codecs: ['avc1'], width: 1280, height: 720 });
    expect(bytesSent).to.be.below(content.length / 100);
  });

  it('read the headers of a 20 MB WAV without its samples', async () => {
    const content = wav(640, 8000, 2);
    const { fields, warnings, bytesSent } = await analyzeServed(analyzeAudio, content, 'audio/wav');
    expect(fields).to.deep.include({ container: 'WAVE', duration_seconds: 640, sample_rate: 8000, channels: 2 });
    expect(warnings).to.deep.equal([]);
    expect(bytesSent).to.be.below(content.length / 100);
  });

  it('read a PDF: its pages, information and text, without the 20 MiB it carries beside them', async () => {
    const text = 'BT /F1 12 Tf 72 720 Td (Read by ranges) Tj ET';
    const attachment = randomBytes(20 * MIB).toString('latin1');
    const content = pdfOf(
      [
        '<< /Type /Catalog /Pages 2 0 R >>',
        '<< /Type /Pages /Kids [3 0 R] /Count 1 >>',
        '<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>',
        `<< /Length ${text.length} >>\nstream\n${text}\nendstream`,
        '<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>',
        `<< /Title (Ranges) >>`,
        // An embedded file's data, which nothing on the page refers to.
        `<< /Type /EmbeddedFile /Length ${attachment.length} >>\nstream\n${attachment}\nendstream`,
      ],
      '/Info 6 0 R',
    );
    const { fields, bytesSent } = await analyzeServed(analyzePdf, content, 'application/pdf');
    expect(fields).to.deep.include({ pages: 1, title: 'Ranges', text: 'Read by ranges', encrypted: false });
    expect(bytesSent).to.be.below(content.length / 100);
  });

  it('stream a text and a gzip from start to end, the text with its encoding sniffed from a first range', async () => {
    const latin1 = Buffer.concat([Buffer.alloc(300_000, 'a'), Buffer.from(' caf\xe9\n', 'latin1')]);
    const text = await analyzeServed(analyzeText, latin1, 'text/plain; charset=utf-8');
    expect(text.fields).to.deep.include({ encoding: 'windows-1252', words: 2, characters: 300_006, lines: 1 });
    const gzip = gzipSync(randomBytes(3 * MIB));
    const { fields } = await analyzeServed(analyzeArchive, gzip, 'application/gzip');
    expect(fields).to.deep.include({ format: 'gzip', uncompressed_bytes: 3 * MIB, compressed_bytes: gzip.length });
  });

  it('decode an image from a local copy removed after, naming neither the copy nor the URL when it fails', async () => {
    const before = copiesLeft();
    const { fields } = await analyzeServed(analyzeImage, png(640, 480, 1), 'image/png');
    expect(fields).to.deep.include({ format: 'png', width: 640, height: 480 });
    const server = await serveBlob(truncated(png(640, 480, 2), 0.6));
    try {
      const err = await rejection(analyze(analyzeImage, { url: server.url }, png(640, 480, 2), 'image/png'));
      expect(err).to.be.instanceOf(ProcessingError).and.include({ code: 'corrupt_file' });
      expect(err.message).to.not.include('127.0.0.1').and.not.include('fp-blob-').and.not.include(os.tmpdir());
    } finally {
      await server.close();
    }
    expect(copiesLeft()).to.deep.equal(before);
  });
});

const DOCX = 'application/vnd.openxmlformats-officedocument.wordprocessingml.document';

describe('a blob that cannot be read', function () {
  this.timeout(60_000);

  const KINDS: Array<[string, (input: AnalysisInput) => Promise<Analyzed<object>>, Buffer, string]> = [
    ['zip', analyzeArchive, zip([{ name: 'a.txt', content: 'a' }]), 'application/zip'],
    ['tar', analyzeArchive, tar([{ name: 'a.txt', content: 'a' }]), 'application/x-tar'],
    ['gzip', analyzeArchive, gzipSync('a'), 'application/gzip'],
    ['wav', analyzeAudio, wav(1), 'audio/wav'],
    ['mp4', analyzeVideo, mp4(), 'video/mp4'],
    ['pdf', analyzePdf, pdfOf(['<< /Type /Catalog >>']), 'application/pdf'],
    ['text', analyzeText, Buffer.alloc(20_000, 'a'), 'text/plain; charset=utf-8'],
    ['image', analyzeImage, png(8, 8), 'image/png'],
    ['docx', analyzeDocument, ooxml(DOCX, [{ name: 'docProps/core.xml', content: '<dc:title>t</dc:title>' }]), DOCX],
    ['doc', analyzeDocument, compoundFile([{ name: 'WordDocument', data: Buffer.alloc(5000) }]), 'application/msword'],
    ['rtf', analyzeDocument, Buffer.from('{\\rtf1 {\\info{\\title t}}}'), 'application/rtf'],
  ];

  /** What each kind's analysis fails with when its source is `source`. */
  const failures = async (source: BlobSource) => {
    const found: Array<[string, Error & { code?: string }]> = [];
    for (const [kind, analysis, content, contentType] of KINDS)
      found.push([kind, await rejection(analyze(analysis, source, content, contentType))]);
    return found;
  };

  it('fails as blob_missing when the URL answers 404, whatever the kind', async () => {
    const server = await startServer((_request, response) => response.writeHead(404).end('NoSuchKey'));
    try {
      for (const [kind, err] of await failures({ url: server.url })) {
        expect(err, kind).to.be.instanceOf(ProcessingError);
        expect(err.code, kind).to.equal('blob_missing');
      }
    } finally {
      await server.close();
    }
  });

  it('fails with an error worth a retry, never a ProcessingError, when the store answers 500, refuses or resets', async () => {
    const erring = await startServer((_request, response) => response.writeHead(500).end('InternalError'));
    const resetting = await startServer((request) => request.socket.destroy());
    const refusing = `http://127.0.0.1:${await freePort()}/bucket/object`;
    try {
      for (const url of [erring.url, resetting.url, refusing]) {
        for (const [kind, err] of await failures({ url })) {
          expect(err, `${kind} from ${url}`).to.not.be.instanceOf(ProcessingError);
          expect(err.message, `${kind} from ${url}`).to.not.include('X-Amz-Signature');
        }
      }
    } finally {
      await Promise.all([erring.close(), resetting.close()]);
    }
  });

  it('fails a PDF with an error worth a retry wherever among its reads the store starts failing', async () => {
    // Six pages whose content streams (padded) lie in chunks of their own: pdf.js reads them one by one.
    const pages = 6;
    const objects = [
      '<< /Type /Catalog /Pages 2 0 R >>',
      `<< /Type /Pages /Kids [${Array.from({ length: pages }, (_, i) => `${3 + 2 * i} 0 R`).join(' ')}] /Count ${pages} >>`,
    ];
    for (let i = 0; i < pages; i++) {
      const text = `BT /F1 12 Tf 72 720 Td (Page ${i}) Tj ET${' '.repeat(100_000)}`;
      objects.push(
        `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 ${3 + 2 * pages} 0 R >> >> /Contents ${4 + 2 * i} 0 R >>`,
        `<< /Length ${text.length} >>\nstream\n${text}\nendstream`,
      );
    }
    objects.push('<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>');
    const content = pdfOf(objects);
    const served = await serveBlob(content);
    let answered = 0;
    let failAfter = 0;
    const failing = await startServer((request, response) => {
      if (answered++ < failAfter) served.answer(request, response);
      else response.writeHead(503).end('SlowDown');
    });
    try {
      for (; ; failAfter++) {
        answered = 0;
        const outcome = await analyze(analyzePdf, { url: failing.url }, content, 'application/pdf').catch(
          (err: Error) => err,
        );
        if (!(outcome instanceof Error)) {
          expect(outcome.fields).to.include({ pages, text: 'Page 0 Page 1 Page 2 Page 3 Page 4 Page 5' });
          break;
        }
        expect(outcome, `failing after ${failAfter} reads`).to.not.be.instanceOf(ProcessingError);
        expect(outcome.message).to.equal('The blob store answered 503 to a read.');
      }
      expect(failAfter, 'reads it takes').to.be.above(pages);
    } finally {
      await Promise.all([served.close(), failing.close()]);
    }
  });

  it('fails a read answered with another range than asked, or with a body cut short', async () => {
    const content = randomBytes(1000);
    const shifted = await startServer((_request, response) =>
      response.writeHead(206, { 'Content-Range': 'bytes 1-100/1000' }).end(content.subarray(1, 101)),
    );
    const cut = await startServer((request, response) => {
      response.writeHead(206, { 'Content-Range': 'bytes 0-99/1000', 'Content-Length': 100 });
      response.write(content.subarray(0, 50), () => request.socket.destroy());
    });
    const whole = await startServer((_request, response) => response.writeHead(200).end(content));
    try {
      for (const server of [shifted, cut, whole]) {
        const reader = await openBlob({ url: server.url });
        const err = await rejection(reader.read(Buffer.alloc(100), 0, 100, 0));
        expect(err).to.be.instanceOf(Error).and.not.be.instanceOf(ProcessingError);
      }
    } finally {
      await Promise.all([shifted.close(), cut.close(), whole.close()]);
    }
  });

  it('reads what is left near the end, and nothing at or past it where the store answers 416', async () => {
    const content = randomBytes(1000);
    const server = await serveBlob(content);
    try {
      const reader = await openBlob({ url: server.url });
      const buffer = Buffer.alloc(100);
      expect(await reader.read(buffer, 0, 100, 950)).to.deep.equal({ bytesRead: 50 });
      expect(buffer.subarray(0, 50)).to.deep.equal(content.subarray(950));
      expect(await reader.read(buffer, 0, 100, 1000)).to.deep.equal({ bytesRead: 0 });
      expect(await reader.read(buffer, 0, 100, 5000)).to.deep.equal({ bytesRead: 0 });
    } finally {
      await server.close();
    }
  });
});
