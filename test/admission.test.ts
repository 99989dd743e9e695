import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SharedRedis } from '../core/redis.js';
import { snapshot } from './support/leftovers.js';
import { expectProblem } from './support/problems.js';
import { connect, parseResponse, readUntilClosed } from './support/raw.js';
import { startService, upload, uploadFile } from './support/service.js';
import { inCI } from './support/tools.js';

describe('admission control', () => {
  it('answers 503 overloaded with Retry-After above MAX_BACKLOG waiting jobs, before reading the body', async () => {
    const service = await startService({ worker: false, env: { MAX_BACKLOG: '2' } });
    try {
      for (let i = 0; i < 3; i++) await uploadFile(service.url, { content: `backlog ${i}` });
      // The backlog is read in the background (every 100 ms in tests), never on the upload path.
      await new Promise((resolve) => setTimeout(resolve, 300));
      const before = await snapshot();
      const response = await upload(service.url, { content: 'one too many' });
      await expectProblem(response, 503, 'overloaded');
      expect(response.headers.get('retry-after')).to.equal('10');

      // An upload of 8 MiB of which only the start is ever sent: the answer must come without the rest.
      const socket = await connect(service.url);
      const closed = readUntilClosed(socket, 5_000);
      const declared = 8 * 1024 * 1024;
      const start = Buffer.concat([
        Buffer.from(
          `POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: ${declared}\r\n\r\n` +
            '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="big.bin"\r\n\r\n',
        ),
        Buffer.alloc(16 * 1024, 0x61),
      ]);
      socket.write(start);
      const { data, closedAfterMs } = await closed;
      expect(data, 'an answer while most of the body was still unsent').to.not.equal('');
      const early = parseResponse(data);
      expect(early.status).to.equal(503);
      expect(JSON.parse(early.body)).to.include({ code: 'overloaded' });
      expect(early.headers).to.match(/^retry-after: 10$/im);
      // It does not wait for the body either: the answer closes the connection rather than read on.
      expect(early.headers).to.match(/^connection: close$/im);
      expect(closedAfterMs).to.be.below(4_000);
      expect(start.length / declared, 'share of the body sent').to.be.below(0.01);
      expect(await before.unchanged()).to.deep.equal({ rows: 0, files: [] });
      expect((await fetch(`${service.url}/files/`)).status, 'reads still work').to.equal(200);
    } finally {
      await service.close();
    }
  });

  it('answers 429 rate_limited per client once it is over its rate, sparing other clients', async () => {
    const service = await startService({
      worker: false,
      env: {
        RATE_LIMIT_PER_SECOND: '1',
        RATE_LIMIT_BURST: '2',
        API_TOKENS: 'greedy-client-0123456789,polite-client-0123456789',
      },
    });
    const greedy = { headers: { Authorization: 'Bearer greedy-client-0123456789' } };
    const polite = { headers: { Authorization: 'Bearer polite-client-0123456789' } };
    try {
      expect((await upload(service.url, { content: 'a' }, greedy)).status).to.equal(201);
      expect((await upload(service.url, { content: 'b' }, greedy)).status).to.equal(201);
      const limited = await upload(service.url, { content: 'c' }, greedy);
      await expectProblem(limited, 429, 'rate_limited');
      expect(Number(limited.headers.get('retry-after'))).to.be.within(1, 2);
      expect((await upload(service.url, { content: 'd' }, polite)).status).to.equal(201);
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      expect((await upload(service.url, { content: 'e' }, greedy)).status, 'refilled after a second').to.equal(201);
    } finally {
      await service.close();
    }
  });

  it('lets uploads through while the rate limiter cannot reach Redis', async () => {
    const unreachable = SharedRedis.connect({ url: 'redis://127.0.0.1:9', prefix: 'fp-test' });
    const service = await startService({
      worker: false,
      env: { RATE_LIMIT_PER_SECOND: '1' },
      rateLimitRedis: unreachable,
    });
    try {
      for (let i = 0; i < 4; i++) expect((await upload(service.url, { content: `open ${i}` })).status).to.equal(201);
    } finally {
      await service.close();
      unreachable.close();
    }
  });

  describe('with the blob store full', () => {
    let dir: string;
    before(function () {
      dir = mkdtempSync(path.join(os.tmpdir(), 'fp-full-'));
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=512k', 'tmpfs', dir]);
      } catch (err) {
        // Mounting needs root; CI runs as root, so there the test must run.
        if (inCI()) throw err;
        this.skip();
      }
    });
    after(() => {
      try {
        execFileSync('umount', [dir]);
      } catch {
        // never mounted
      }
      rmSync(dir, { recursive: true, force: true });
    });

    it('answers 507 insufficient_storage and keeps nothing', async () => {
      const service = await startService({ worker: false, storageDir: dir });
      try {
        const before = await snapshot(dir);
        const rows = await snapshot();
        await expectProblem(
          await upload(service.url, { content: Buffer.alloc(1024 * 1024, 1) }),
          507,
          'insufficient_storage',
        );
        expect((await before.unchanged()).files).to.deep.equal([]);
        expect((await rows.unchanged()).rows).to.equal(0);
        expect((await upload(service.url, { content: 'small still fits' })).status).to.equal(201);
      } finally {
        await service.close();
      }
    });
  });
});
