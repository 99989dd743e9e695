import { expect } from 'chai';
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import type { File } from '../core/fileRecord.js';
import { LocalDiskStore, type BlobVariant, type StoredBlob } from '../core/storage/index.js';
import { TEST_ENV } from './support/env.js';
import { snapshot, storedFiles } from './support/leftovers.js';
import { captureLogs } from './support/logs.js';
import { expectProblem } from './support/problems.js';
import { connect, filePart, multipartRequest, parseResponse, rawRequest, readUntilClosed } from './support/raw.js';
import { startService, upload, uploadFile, type TestService } from './support/service.js';
import { testingS3 } from './support/stores.js';

const TOKEN_A = 'token-a-0123456789abcdef';
const TOKEN_B = 'token-b-0123456789abcdef';
const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

describe('security', () => {
  describe('bearer tokens', () => {
    let service: TestService;
    const logs = captureLogs('debug');
    let tokenFile: string;
    before(async () => {
      tokenFile = path.join(await mkdtemp(path.join(os.tmpdir(), 'fp-tokens-')), 'tokens');
      await writeFile(tokenFile, `${TOKEN_B}\n`);
      service = await startService({
        env: { API_TOKENS: TOKEN_A, API_TOKENS_FILE: tokenFile },
        logger: logs.logger,
        tokenReloadMs: 100,
      });
    });
    after(() => service.close());

    it('answers 401 unauthorized with WWW-Authenticate: Bearer without a token', async () => {
      for (const [method, route] of [
        ['GET', '/files/'],
        ['POST', '/upload/'],
        ['GET', '/files/01890000-0000-7000-8000-000000000000/'],
        ['DELETE', '/files/x/'],
        ['GET', '/nowhere'],
      ]) {
        const response = await fetch(`${service.url}${route}`, { method });
        await expectProblem(response, 401, 'unauthorized');
        expect(response.headers.get('www-authenticate')).to.equal('Bearer realm="file-processor"');
      }
    });

    it('answers 401 with error="invalid_token" for a wrong or malformed token', async () => {
      for (const authorization of [
        `Bearer ${TOKEN_A}x`,
        'Bearer short',
        `Basic ${Buffer.from('a:b').toString('base64')}`,
        TOKEN_A,
      ]) {
        const response = await fetch(`${service.url}/files/`, { headers: { Authorization: authorization } });
        await expectProblem(response, 401, 'unauthorized');
        expect(response.headers.get('www-authenticate')).to.equal(
          'Bearer realm="file-processor", error="invalid_token"',
        );
      }
    });

    it('answers 401 to every prefix of a valid token and to a valid token with characters added, from either source', async () => {
      const near = (token: string) => [
        ...Array.from({ length: token.length - 1 }, (_, n) => token.slice(0, n + 1)),
        `${token}x`,
        `${token}${token}`,
        `${token}${TOKEN_A === token ? TOKEN_B : TOKEN_A}`,
        `${token.slice(0, -1)}${token.at(-1) === 'f' ? 'e' : 'f'}`,
        token.toUpperCase(),
      ];
      for (const token of [TOKEN_A, TOKEN_B]) {
        for (const wrong of near(token)) {
          const response = await fetch(`${service.url}/files/`, { headers: bearer(wrong) });
          expect(response.status, `Bearer ${wrong}`).to.equal(401);
          await expectProblem(response, 401, 'unauthorized');
          expect(response.headers.get('www-authenticate'), wrong).to.equal(
            'Bearer realm="file-processor", error="invalid_token"',
          );
        }
        // The token itself still gets in: what was refused was only ever the near miss.
        expect((await fetch(`${service.url}/files/`, { headers: bearer(token) })).status, token).to.equal(200);
      }
    });

    it('lets a valid token in, from API_TOKENS or from API_TOKENS_FILE', async () => {
      expect((await fetch(`${service.url}/files/`, { headers: bearer(TOKEN_A) })).status).to.equal(200);
      expect(
        (await fetch(`${service.url}/files/`, { headers: { Authorization: `bearer ${TOKEN_B}` } })).status,
      ).to.equal(200);
      expect((await upload(service.url, { content: 'with a token' }, { headers: bearer(TOKEN_B) })).status).to.equal(
        201,
      );
    });

    it('picks up a rotated token file without a restart', async () => {
      const rotated = 'token-c-rotated-0123456789';
      await writeFile(tokenFile, `${rotated}\n`);
      const deadline = Date.now() + 5_000;
      while (
        (await fetch(`${service.url}/files/`, { headers: bearer(rotated) })).status !== 200 &&
        Date.now() < deadline
      ) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect((await fetch(`${service.url}/files/`, { headers: bearer(rotated) })).status).to.equal(200);
      expect((await fetch(`${service.url}/files/`, { headers: bearer(TOKEN_B) })).status).to.equal(401);
      expect((await fetch(`${service.url}/files/`, { headers: bearer(TOKEN_A) })).status).to.equal(200);
    });

    it('keeps the contract and its page public', async () => {
      expect((await fetch(`${service.url}/openapi.json`)).status).to.equal(200);
      expect((await fetch(`${service.url}/docs`)).status).to.equal(200);
      expect((await fetch(`${service.url}/docs/assets/init.js`)).status).to.equal(200);
    });

    it('never writes a token to the log', () => {
      expect(logs.lines().length).to.be.greaterThan(5);
      const all = logs.text();
      expect(all).to.not.contain(TOKEN_A.slice(8));
      expect(all).to.not.contain(TOKEN_B.slice(8));
    });
  });

  describe('CORS', () => {
    it('is off by default', async () => {
      const service = await startService({ worker: false });
      try {
        const response = await fetch(`${service.url}/files/`, { headers: { Origin: 'https://evil.example' } });
        expect(response.headers.get('access-control-allow-origin')).to.equal(null);
      } finally {
        await service.close();
      }
    });

    it('answers allowed origins only, preflight included, and keeps its headers on errors', async () => {
      const service = await startService({ worker: false, env: { CORS_ORIGINS: 'https://app.example.com' } });
      try {
        const preflight = await fetch(`${service.url}/upload/`, {
          method: 'OPTIONS',
          headers: {
            Origin: 'https://app.example.com',
            'Access-Control-Request-Method': 'POST',
            'Access-Control-Request-Headers': 'idempotency-key',
          },
        });
        expect(preflight.status).to.equal(204);
        expect(preflight.headers.get('access-control-allow-origin')).to.equal('https://app.example.com');
        expect(preflight.headers.get('access-control-allow-headers')).to.contain('Idempotency-Key');
        const error = await fetch(`${service.url}/files/nope/`, { headers: { Origin: 'https://app.example.com' } });
        expect(error.status).to.equal(404);
        expect(error.headers.get('access-control-allow-origin')).to.equal('https://app.example.com');
        expect(error.headers.get('access-control-expose-headers')).to.contain('X-Request-Id');
        const other = await fetch(`${service.url}/files/`, { headers: { Origin: 'https://evil.example' } });
        expect(other.headers.get('access-control-allow-origin')).to.equal(null);
      } finally {
        await service.close();
      }
    });
  });

  describe('hostile clients', () => {
    let service: TestService;
    before(async () => {
      service = await startService({
        worker: false,
        env: { HTTP_HEADERS_TIMEOUT_MS: '1000', HTTP_IDLE_TIMEOUT_MS: '1500', MAX_UPLOAD_BYTES: '1MiB' },
      });
    });
    after(() => service.close());

    it('cuts off a slowloris client at the headers timeout while others are served', async () => {
      const socket = await connect(service.url);
      const closed = readUntilClosed(socket, 10_000);
      socket.write('POST /upload/ HTTP/1.1\r\nHost: x\r\n');
      const drip = setInterval(() => socket.writable && socket.write('X-Drip: 1\r\n'), 200);
      // Once the answer arrives the drip stops: a write after the server closed would draw a reset, which can
      // drop the answer before it is read.
      socket.once('data', () => clearInterval(drip));
      try {
        const served = await fetch(`${service.url}/files/?limit=1`);
        expect(served.status).to.equal(200);
        const { data, closedAfterMs } = await closed;
        expect(closedAfterMs).to.be.within(900, 4_000);
        expect(data, 'an answer before the server closed the connection').to.not.equal('');
        const response = parseResponse(data);
        expect(response.status).to.equal(408);
        expect(response.headers).to.match(/^connection: close$/im);
      } finally {
        clearInterval(drip);
      }
    });

    it('closes a connection whose body stalls, and keeps none of its bytes', async () => {
      const before = await snapshot();
      const socket = await connect(service.url);
      const closed = readUntilClosed(socket, 10_000);
      const part = '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="stall.bin"\r\n\r\n';
      socket.write(
        `POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 100000\r\n\r\n${part}${'x'.repeat(5000)}`,
      );
      const { closedAfterMs } = await closed;
      expect(closedAfterMs).to.be.within(1_000, 6_000);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await before.unchanged()).to.deep.equal({ rows: 0, files: [] });
    });

    it('answers 431 to a header block over HTTP_MAX_HEADER_BYTES', async () => {
      const response = await rawRequest(
        service.url,
        `GET /files/ HTTP/1.1\r\nHost: x\r\nX-Huge: ${'a'.repeat(20_000)}\r\nConnection: close\r\n\r\n`,
      );
      expect(response.status).to.equal(431);
    });

    it('answers 400 to a body of 10,000 parts, and keeps nothing', async () => {
      const before = await snapshot();
      const parts = Array.from(
        { length: 10_000 },
        (_, i) => `--XyZ\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\nv\r\n`,
      ).join('');
      const response = await rawRequest(
        service.url,
        multipartRequest(`${parts}${filePart('a.txt', 'hello')}--XyZ--\r\n`),
      );
      expect(response.status).to.equal(400);
      expect(JSON.parse(response.body)).to.include({ code: 'invalid_multipart' });
      expect(await before.unchanged()).to.deep.equal({ rows: 0, files: [] });
    });

    it('answers 400 to every malformed multipart variant, and keeps nothing', async () => {
      // A part without Content-Disposition has no name, so busboy skips it: the form then has no file.
      const missingFile = new Set(['a part without Content-Disposition']);
      const variants: Record<string, string | Buffer> = {
        'wrong boundary': `--Other\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nx\r\n--Other--\r\n`,
        'no closing boundary': `--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n\r\nx\r\n`,
        'a header line without a colon': `--XyZ\r\nContent-Disposition form-data\r\n\r\nx\r\n--XyZ--\r\n`,
        'a part without Content-Disposition': `--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--\r\n`,
        'headers that never end': `--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a"\r\n${'X: y\r\n'.repeat(3000)}`,
        'binary garbage': Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) % 256)),
        'too many text fields': `${Array.from({ length: 51 }, (_, i) => `--XyZ\r\nContent-Disposition: form-data; name="f${i}"\r\n\r\nv\r\n`).join('')}--XyZ--\r\n`,
        'a text field over 64 KiB': `--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\n${'n'.repeat(70_000)}\r\n--XyZ--\r\n`,
      };
      for (const [name, body] of Object.entries(variants)) {
        const before = await snapshot();
        const response = await rawRequest(service.url, multipartRequest(body));
        expect(response.status, name).to.equal(400);
        const code = (JSON.parse(response.body) as { code: string }).code;
        expect(code, name).to.equal(missingFile.has(name) ? 'file_missing' : 'invalid_multipart');
        expect(await before.unchanged(), name).to.deep.equal({ rows: 0, files: [] });
      }
    });

    it('stores traversal, NUL, overlong and look-alike filenames under a safe name', async () => {
      const cases: Array<[string, string]> = [
        ['../../../../etc/cron.d/evil', 'evil'],
        ['%2e%2e%2fsecret', '%2e%2e%2fsecret'],
        ['report\u202Efdp.exe', 'reportfdp.exe'],
        [`${'x'.repeat(1000)}.pdf`, `${'x'.repeat(251)}.pdf`],
        ['..\\..\\windows\\system32\\cmd.exe', 'cmd.exe'],
      ];
      for (const [sent, stored] of cases) {
        const response = await rawRequest(
          service.url,
          multipartRequest(Buffer.concat([Buffer.from(filePart(sent, 'x'), 'utf8'), Buffer.from('--XyZ--\r\n')])),
        );
        expect(response.status, JSON.stringify(sent)).to.equal(201);
        expect((JSON.parse(response.body) as File).name, JSON.stringify(sent)).to.equal(stored);
      }
      // A NUL byte is not allowed in a header at all: the part is refused as malformed.
      const nul = await rawRequest(service.url, multipartRequest(`${filePart('a\u0000b.txt', 'x')}--XyZ--\r\n`));
      expect([nul.status, (JSON.parse(nul.body) as { code: string }).code]).to.deep.equal([400, 'invalid_multipart']);
    });

    it('ignores a lying Content-Type in favour of the bytes', async () => {
      const response = await upload(service.url, {
        name: 'virus.exe',
        content: 'plain words',
        type: 'application/x-msdownload',
      });
      expect(response.status).to.equal(201);
      expect(await response.json()).to.include({ kind: 'text', content_type: 'text/plain; charset=utf-8' });
      const fake = await fetch(`${service.url}/upload/`, {
        method: 'POST',
        headers: { 'Content-Type': 'multipart/form-data; boundary=XyZ' },
        body: '{"json": true}',
      });
      await expectProblem(fake, 400, 'invalid_multipart');
    });
  });

  describe('slow bodies', () => {
    const WINDOW_MS = 1_000;
    let service: TestService;
    before(async () => {
      service = await startService({
        worker: false,
        env: {
          HTTP_MIN_BYTES_PER_SECOND: '1024',
          HTTP_MIN_RATE_WINDOW_MS: String(WINDOW_MS),
          MAX_UPLOAD_BYTES: '1MiB',
        },
      });
    });
    after(() => service.close());

    /** Starts an upload whose file part then arrives 10 bytes every 100 ms (100 bytes a second), until the server closes. */
    /** Resolves once connected and trickling, with what the server sent when it closed the connection. */
    async function trickle(): Promise<{ closed: Promise<{ data: string; closedAfterMs: number }> }> {
      const socket = await connect(service.url);
      const closed = readUntilClosed(socket, 10_000);
      const part = '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="trickle.bin"\r\n\r\n';
      socket.write(
        `POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: 100000\r\n\r\n${part}`,
      );
      const drip = setInterval(() => socket.writable && socket.write('x'.repeat(10)), 100);
      return { closed: closed.finally(() => clearInterval(drip)) };
    }

    it('cuts a body trickled below HTTP_MIN_BYTES_PER_SECOND after about a window, with 408 request_timeout, and keeps nothing', async () => {
      const before = await snapshot();
      const { closed } = await trickle();
      // On disk the upload holds a temporary file while it trickles (a bucket, nothing before a whole part).
      if (!testingS3()) {
        const deadline = Date.now() + 2_000;
        while (!(await storedFiles()).some((file) => file.endsWith('.part')) && Date.now() < deadline)
          await new Promise((resolve) => setTimeout(resolve, 20));
        expect(
          (await storedFiles()).some((file) => file.endsWith('.part')),
          'a temporary file while trickling',
        ).to.equal(true);
      }
      const { data, closedAfterMs } = await closed;
      expect(closedAfterMs).to.be.within(WINDOW_MS * 0.8, WINDOW_MS * 5);
      const response = parseResponse(data);
      expect(response.status).to.equal(408);
      expect(response.headers).to.match(/^connection: close$/im);
      expect(response.headers).to.match(/^content-type: application\/problem\+json/im);
      expect(JSON.parse(response.body)).to.include({ code: 'request_timeout' });
      expect(await before.unchanged()).to.deep.equal({ rows: 0, files: [] });
    });

    it('cuts 50 trickling clients at once, leaving nothing of theirs, while a fast client beside them is served', async () => {
      const before = await snapshot();
      const cuts = await Promise.all(Array.from({ length: 50 }, () => trickle()));
      // All 50 are connected and trickling while the fast client uploads.
      const fast = await uploadFile(service.url, { name: 'fast.txt', content: 'served meanwhile' });
      const closed = await Promise.all(cuts.map((cut) => cut.closed));
      for (const { data, closedAfterMs } of closed) {
        expect(closedAfterMs).to.be.below(WINDOW_MS * 5);
        expect(parseResponse(data).status).to.equal(408);
      }
      const added = await before.unchanged();
      expect(added.rows).to.equal(1);
      expect(added.files.map((file) => path.basename(file))).to.deep.equal([fast.id]);
    });

    it('does not count against the client the time a slow blob store holds its body back', async () => {
      const slow = new SlowDiskStore(TEST_ENV.storageDir);
      // 64 KiB a second at most, while the client must send 256 KiB a second: only the store is slow.
      const held = await startService({
        worker: false,
        storage: slow,
        env: {
          HTTP_MIN_BYTES_PER_SECOND: String(256 * 1024),
          HTTP_MIN_RATE_WINDOW_MS: String(WINDOW_MS),
          MAX_UPLOAD_BYTES: '1MiB',
        },
      });
      try {
        const started = Date.now();
        const response = await upload(held.url, { name: 'held.bin', content: Buffer.alloc(256 * 1024, 7) });
        expect(response.status).to.equal(201);
        expect(Date.now() - started, 'the store held the body back for several windows').to.be.above(WINDOW_MS * 3);
      } finally {
        await held.close();
      }
    });
  });
});

/** A disk store that takes at most 16 KiB every 250 ms of an upload, as a slow or busy volume would. */
class SlowDiskStore extends LocalDiskStore {
  override put(
    id: string,
    source: Readable,
    options: { maxBytes: number; variant?: BlobVariant },
  ): Promise<StoredBlob> {
    const slowly = new Transform({
      highWaterMark: 16 * 1024,
      transform(chunk: Buffer, _encoding, callback) {
        const slices = Array.from({ length: Math.ceil(chunk.length / (16 * 1024)) }, (_, n) =>
          chunk.subarray(n * 16 * 1024, (n + 1) * 16 * 1024),
        );
        const next = () => {
          const slice = slices.shift();
          if (!slice) return callback();
          setTimeout(() => {
            this.push(slice);
            next();
          }, 250);
        };
        next();
      },
    });
    source.on('error', (err) => slowly.destroy(err));
    return super.put(id, source.pipe(slowly), options);
  }
}
