import { expect } from 'chai';
import { createHash } from 'node:crypto';
import net from 'node:net';
import type { File } from '../core/fileRecord.js';
import { sql } from './support/db.js';
import { png } from './support/fixtures.js';
import { expectProblem } from './support/problems.js';
import { storedFiles } from './support/leftovers.js';
import { MULTIPART_ALLOWANCE_BYTES, MULTIPART_LIMITS } from '../api/multipart.js';
import {
  connect,
  filePart,
  httpChunk,
  multipartRequest,
  parseResponse,
  rawRequest,
  readUntilClosed,
  sendUntilClosed,
} from './support/raw.js';
import { startService, upload, uploadFile, waitForStatus, type TestService } from './support/service.js';
import { testingS3 } from './support/stores.js';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

/** A part whose header block is as large as busboy takes, padded by a header of no meaning. */
function paddedPart(boundary: string, disposition: string | null, content: Buffer | string): Buffer {
  const headers = disposition ? `Content-Disposition: ${disposition}\r\n` : '';
  // busboy stops at 16 KiB counted: the bytes, plus one per header and one per header after the first.
  const counted = disposition ? 3 : 1;
  const pad = 16 * 1024 - counted - Buffer.byteLength(`${headers}X-Pad: \r\n\r\n`);
  return Buffer.concat([
    Buffer.from(`--${boundary}\r\n${headers}X-Pad: ${'p'.repeat(pad)}\r\n\r\n`),
    Buffer.from(content),
    Buffer.from('\r\n'),
  ]);
}

/** Node reads a socket 64 KiB at a time: what the server may have read past the point it stopped at. */
const READ_AHEAD_BYTES = 256 * 1024;

/** A connection to the service, and the server's end of it (whose bytesRead counts what the server read). */
async function connectCounted(service: TestService): Promise<{ socket: net.Socket; serverSide: net.Socket }> {
  const accepted = new Promise<net.Socket>((resolve) => service.server.once('connection', resolve));
  const socket = await connect(service.url);
  return { socket, serverSide: await accepted };
}

/** POSTs a hand-made multipart body (boundary `XyZ`) and returns the status and the problem's code. */
async function postMultipart(url: string, body: string): Promise<{ status: number; code: string }> {
  const response = await rawRequest(url, multipartRequest(body));
  return { status: response.status, code: (JSON.parse(response.body) as { code: string }).code };
}

describe('POST /upload/', () => {
  let service: TestService;
  before(async () => {
    service = await startService({ env: { MAX_UPLOAD_BYTES: String(64 * 1024) } });
  });
  after(() => service.close());

  it('answers 201 with the File and a Location, and the worker processes it', async () => {
    const content = 'hello, file processor\n';
    const response = await upload(service.url, { name: 'hello.txt', content, type: 'application/x-lie' });
    expect(response.status).to.equal(201);
    const file = (await response.json()) as File;
    expect(response.headers.get('location')).to.equal(`${service.url}/files/${file.id}/`);
    expect(file).to.include({
      name: 'hello.txt',
      size: Buffer.byteLength(content),
      kind: 'text',
      content_type: 'text/plain; charset=utf-8',
      sha256: sha256(content),
      status: 'queued',
      processed: false,
      processed_at: null,
      attempts: 0,
      result: null,
      error: null,
      thumbnail: null,
      file: `${service.url}/files/${file.id}/content`,
    });
    expect(file.id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/);
    expect(file.uploaded_at).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

    const done = await waitForStatus(service.url, file.id);
    expect(done).to.include({ status: 'processed', processed: true, attempts: 1 });
    expect(done.result).to.include({ sha256_verified: true, bytes_read: Buffer.byteLength(content) });
    expect(Date.parse(done.processed_at!)).to.be.at.least(Date.parse(file.uploaded_at));
  });

  it('answers the same with and without the trailing slash', async () => {
    const response = await upload(service.url, { name: 'a.txt', content: 'a' }, { path: '/upload' });
    expect(response.status).to.equal(201);
  });

  it('decides the kind from the bytes, not from the name or the declared type', async () => {
    const cases: Array<[string, Buffer | string, string, string]> = [
      ['photo.txt', png(), 'image', 'image/png'],
      ['notes.png', 'just words', 'text', 'text/plain; charset=utf-8'],
      [
        'utf16.txt',
        Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('text in UTF-16', 'utf16le')]),
        'text',
        'text/plain; charset=utf-16le',
      ],
      ['data.csv', 'a,b\n1,2\n', 'text', 'text/csv; charset=utf-8'],
      ['doc.pdf', '%PDF-1.7\n%\xe2\xe3\xcf\xd3\n', 'pdf', 'application/pdf'],
      ['blob.bin', Buffer.from([0, 1, 2, 3, 0, 0, 0xff, 0x10]), 'other', 'application/octet-stream'],
    ];
    for (const [name, content, kind, contentType] of cases) {
      const file = await uploadFile(service.url, { name, content, type: 'text/html' });
      expect([file.name, file.kind, file.content_type]).to.deep.equal([name, kind, contentType]);
      // Done before the next tests count stored files: the image's thumbnail comes a moment later.
      await waitForStatus(service.url, file.id);
    }
  });

  it('reduces the client filename to a safe base name', async () => {
    const cases: Array<[string, string]> = [
      ['../../etc/passwd', 'passwd'],
      ['C:\\Users\\me\\report.pdf', 'report.pdf'],
      ['evil\u202Etxt.exe', 'eviltxt.exe'],
      ['..', 'file'],
      ['naïve résumé.txt', 'naïve résumé.txt'],
      [`${'é'.repeat(300)}.txt`, `${'é'.repeat(125)}.txt`],
    ];
    for (const [sent, stored] of cases) {
      const file = await uploadFile(service.url, { name: sent, content: 'x' });
      expect(file.name, sent).to.equal(stored);
      expect(Buffer.byteLength(file.name)).to.be.at.most(255);
    }
  });

  it('echoes a sane X-Request-Id and replaces an insane one', async () => {
    const echoed = await fetch(`${service.url}/files/`, { headers: { 'X-Request-Id': 'client-id-123' } });
    expect(echoed.headers.get('x-request-id')).to.equal('client-id-123');
    const replaced = await fetch(`${service.url}/files/`, { headers: { 'X-Request-Id': 'bad id with spaces' } });
    expect(replaced.headers.get('x-request-id')).to.match(/^[0-9a-f-]{36}$/);
  });

  describe('errors', () => {
    let before: string[];
    let rowsBefore: number;
    beforeEach(async () => {
      before = await storedFiles();
      rowsBefore = Number((await sql<{ count: string }>('SELECT count(*) FROM files'))[0]!.count);
    });
    afterEach(async () => {
      // A failed upload leaves nothing behind: no bytes, no row.
      expect(await storedFiles()).to.deep.equal(before);
      expect(Number((await sql<{ count: string }>('SELECT count(*) FROM files'))[0]!.count)).to.equal(rowsBefore);
    });

    it('answers 400 file_missing when no part is named "file"', async () => {
      await expectProblem(await upload(service.url, { field: 'document', content: 'x' }), 400, 'file_missing');
      await expectProblem(await upload(service.url, [], { fields: { comment: 'no file here' } }), 400, 'file_missing');
    });

    it('answers 400 file_missing when "file" is a text field rather than a file', async () => {
      const problem = await expectProblem(
        await upload(service.url, [], { fields: { file: 'not a file' } }),
        400,
        'file_missing',
      );
      expect(problem.detail).to.match(/text field/);
    });

    it('answers 400 file_empty for a zero-byte file', async () => {
      const problem = await expectProblem(await upload(service.url, { content: '' }), 400, 'file_empty');
      expect(problem.detail).to.equal('The submitted file is empty.');
    });

    it('answers 400 too_many_files for two file parts', async () => {
      await expectProblem(await upload(service.url, [{ content: 'one' }, { content: 'two' }]), 400, 'too_many_files');
      await expectProblem(
        await upload(service.url, [{ content: 'one' }, { field: 'other', content: 'two' }]),
        400,
        'too_many_files',
      );
    });

    it('ignores other text fields', async () => {
      const response = await upload(service.url, { content: 'kept' }, { fields: { description: 'ignored' } });
      expect(response.status).to.equal(201);
      rowsBefore += 1;
      before = await storedFiles();
    });

    it('answers 413 file_too_large past MAX_UPLOAD_BYTES and keeps nothing', async () => {
      const problem = await expectProblem(
        await upload(service.url, { content: Buffer.alloc(64 * 1024 + 1, 1) }),
        413,
        'file_too_large',
      );
      expect(problem.detail).to.contain(String(64 * 1024));
    });

    it('accepts a file of exactly MAX_UPLOAD_BYTES', async () => {
      const response = await upload(service.url, { content: Buffer.alloc(64 * 1024, 1) });
      expect(response.status).to.equal(201);
      rowsBefore += 1;
      before = await storedFiles();
    });

    it('accepts the largest form its limits allow: a file of MAX_UPLOAD_BYTES beside every part and text field at their largest', async () => {
      const boundary = 'b'.repeat(70);
      const fields = Array.from({ length: MULTIPART_LIMITS.fields }, (_, i) =>
        paddedPart(
          boundary,
          `form-data; name="${`f${i}`.padEnd(MULTIPART_LIMITS.fieldNameSize, 'x')}"`,
          'v'.repeat(MULTIPART_LIMITS.fieldSize),
        ),
      );
      const unnamed = Array.from({ length: MULTIPART_LIMITS.parts - MULTIPART_LIMITS.fields - 1 }, () =>
        paddedPart(boundary, null, ''),
      );
      const file = paddedPart(boundary, 'form-data; name="file"; filename="largest.bin"', Buffer.alloc(64 * 1024, 1));
      const body = Buffer.concat([...fields, ...unnamed, file, Buffer.from(`--${boundary}--\r\n`)]);
      expect(body.length).to.be.above(MULTIPART_ALLOWANCE_BYTES * 0.8);
      const response = await rawRequest(service.url, multipartRequest(body, '', boundary));
      expect(response.status, response.body).to.equal(201);
      rowsBefore += 1;
      before = await storedFiles();
    });

    it('answers 413 file_too_large at once, and closes the connection, when Content-Length is over the limit', async () => {
      const socket = await connect(service.url);
      const closed = readUntilClosed(socket, 5_000);
      const overLimit = 64 * 1024 + MULTIPART_ALLOWANCE_BYTES + 1;
      // The body is never sent: only an answer that did not wait for it arrives.
      socket.write(
        `POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: ${overLimit}\r\n\r\n`,
      );
      const { data, closedAfterMs } = await closed;
      const response = parseResponse(data);
      expect(response.status).to.equal(413);
      expect(response.headers).to.match(/^connection: close$/im);
      expect(JSON.parse(response.body)).to.include({ code: 'file_too_large' });
      expect(closedAfterMs).to.be.below(4_000);
    });

    it('answers 413 file_too_large and closes the connection once a chunked body passes the limit, reading no further', async () => {
      const { socket, serverSide } = await connectCounted(service);
      const closed = readUntilClosed(socket, 15_000);
      socket.write(
        'POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n',
      );
      // A complete form, then an epilogue of up to 1 GiB after its closing boundary.
      socket.write(httpChunk(`${filePart('kept.txt', 'a file within the limit')}--XyZ--\r\n`));
      const sent = await sendUntilClosed(socket, httpChunk(Buffer.alloc(64 * 1024, 0x65)), 1024 ** 3);
      const response = parseResponse((await closed).data);
      expect(response.status).to.equal(413);
      expect(response.headers).to.match(/^connection: close$/im);
      expect(JSON.parse(response.body)).to.include({ code: 'file_too_large' });
      // The limit is 1 MiB and 64 KiB; what else went out sat in socket buffers when the server stopped reading.
      const cap = 64 * 1024 + MULTIPART_ALLOWANCE_BYTES;
      expect(serverSide.bytesRead, 'bytes the server read').to.be.within(cap, cap + READ_AHEAD_BYTES);
      expect(sent).to.be.below(64 * 1024 ** 2);
    });

    it('answers 413 file_too_large to an endless file part, having read little more than the limit of it', async () => {
      const { socket, serverSide } = await connectCounted(service);
      const closed = readUntilClosed(socket, 15_000);
      socket.write(
        'POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nTransfer-Encoding: chunked\r\n\r\n',
      );
      socket.write(httpChunk('--XyZ\r\nContent-Disposition: form-data; name="file"; filename="endless.bin"\r\n\r\n'));
      // A file of up to 64 MiB (1,024 times the limit), sent as fast as the server takes it, never finished.
      const offered = 64 * 1024 ** 2;
      const sent = await sendUntilClosed(socket, httpChunk(Buffer.alloc(64 * 1024, 0x66)), offered);
      const { data } = await closed;
      const response = parseResponse(data);
      expect(response.status, data.slice(0, 200)).to.equal(413);
      expect(response.headers).to.match(/^connection: close$/im);
      expect(JSON.parse(response.body)).to.include({
        code: 'file_too_large',
        detail: `The file is larger than the limit of ${64 * 1024} bytes.`,
      });
      // Past the file's limit the server reads on (and drops) up to the body's cap, the limit and the allowance for the
      // rest of the form, so that a client done sending reads the answer; then it stops. What the client counted as
      // sent beyond that sat in the two sockets' buffers (about 5 MiB on Linux's loopback).
      const cap = 64 * 1024 + MULTIPART_ALLOWANCE_BYTES;
      expect(serverSide.bytesRead, 'bytes the server read').to.be.within(cap, cap + READ_AHEAD_BYTES);
      expect(sent, 'bytes the client got out').to.be.below(offered / 4);
    });

    it('closes the connection when it answers before reading the body, rather than read the rest to reach the next request', async () => {
      const socket = await connect(service.url);
      const closed = readUntilClosed(socket, 5_000);
      socket.write(
        `POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${1024 * 1024}\r\n\r\n`,
      );
      socket.write(Buffer.alloc(64 * 1024, 0x20));
      const { data, closedAfterMs } = await closed;
      const response = parseResponse(data);
      expect(response.status).to.equal(415);
      expect(response.headers).to.match(/^connection: close$/im);
      expect(closedAfterMs).to.be.below(4_000);
    });

    it('answers 400 invalid_multipart for a boundary longer than RFC 2046 allows', async () => {
      const boundary = 'b'.repeat(71);
      const response = await rawRequest(
        service.url,
        multipartRequest(
          `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nx\r\n--${boundary}--\r\n`,
          '',
          boundary,
        ),
      );
      expect([response.status, (JSON.parse(response.body) as { code: string }).code]).to.deep.equal([
        400,
        'invalid_multipart',
      ]);
    });

    it('answers 415 unsupported_media_type for a body that is not multipart', async () => {
      const response = await fetch(`${service.url}/upload/`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{"file": "x"}',
      });
      await expectProblem(response, 415, 'unsupported_media_type');
      await expectProblem(await fetch(`${service.url}/upload/`, { method: 'POST' }), 415, 'unsupported_media_type');
    });

    it('answers 400 invalid_multipart for a body without a boundary', async () => {
      const response = await fetch(`${service.url}/upload/`, {
        method: 'POST',
        headers: { 'content-type': 'multipart/form-data' },
        body: 'garbage',
      });
      await expectProblem(response, 400, 'invalid_multipart');
    });

    it('answers 400 invalid_multipart for a body cut short, and removes the partial bytes', async () => {
      const body =
        '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="cut.txt"\r\nContent-Type: text/plain\r\n\r\nthe start of a file that never ends';
      expect(await postMultipart(service.url, body)).to.deep.equal({ status: 400, code: 'invalid_multipart' });
    });

    it('removes the partial bytes when the client disconnects mid-upload', async () => {
      const { port } = new URL(service.url);
      const head = '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n';
      const socket = net.connect(Number(port), '127.0.0.1');
      await new Promise((resolve) => socket.once('connect', resolve));
      socket.write(
        `POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 1000000\r\n\r\n${head}`,
      );
      socket.write(Buffer.alloc(20_000, 7));
      if (!testingS3()) {
        // On disk the bytes reach a temporary file at once. A bucket holds nothing until a whole part (8 MiB,
        // over this service's limit) arrived: storage.test.ts cuts a multipart upload in the middle.
        const deadline = Date.now() + 5_000;
        while ((await storedFiles()).length === before.length && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 10));
        expect((await storedFiles()).some((f) => f.endsWith('.part'))).to.equal(true);
      }
      socket.destroy();
      const deadline = Date.now() + 5_000;
      while ((await storedFiles()).length !== before.length && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10));
      expect(await storedFiles()).to.deep.equal(before);
    });

    it('answers 400 invalid_multipart for malformed part headers', async () => {
      const body = '--XyZ\r\nthis is not a header\r\n\r\ndata\r\n--XyZ--\r\n';
      expect(await postMultipart(service.url, body)).to.deep.equal({ status: 400, code: 'invalid_multipart' });
    });
  });
});
