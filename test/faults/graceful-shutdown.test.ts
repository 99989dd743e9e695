import { expect } from 'chai';
import { readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import type { File } from '../../core/fileRecord.js';
import { bigBinaryFile, uploadFromDisk } from '../support/fixtures.js';
import { connect, parseResponse, readUntilClosed } from '../support/raw.js';
import {
  freePort,
  killStartedProcesses,
  startProcess,
  startWorkerProcess,
  waitUntilReady,
} from '../support/processes.js';
import { usePrivateStack, waitFor } from '../support/stack.js';

describe('fault: SIGTERM while work is in flight', function () {
  this.timeout(120_000);
  const servers = usePrivateStack({ MAX_UPLOAD_BYTES: '1GiB', WORKER_CONCURRENCY: '1' });

  it('lets the API finish an upload under way, refuse new connections, and exit 0', async () => {
    const socket = await connect(servers.stack.url);
    const answer = readUntilClosed(socket);
    const body = Buffer.concat([
      Buffer.from('--XyZ\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\n\r\n'),
      Buffer.alloc(512 * 1024, 'a'),
      Buffer.from('\r\n--XyZ--\r\n'),
    ]);
    socket.write(
      `POST /upload/ HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
    );
    socket.write(body.subarray(0, 1000));
    await new Promise((resolve) => setTimeout(resolve, 200));

    const api = servers.stack.api;
    api.child.kill('SIGTERM');
    await waitFor(async () => (await fetch(`${servers.stack.adminUrl}/readyz`)).status === 503, 'readiness to fail');
    const refused = await fetch(`${servers.stack.url}/files/`).then(
      () => false,
      () => true,
    );
    expect(refused, 'a new connection after SIGTERM').to.equal(true);
    for (let offset = 1000; offset < body.length; offset += 64 * 1024) {
      socket.write(body.subarray(offset, offset + 64 * 1024));
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const response = parseResponse((await answer).data);
    expect(response.status).to.equal(201);
    expect((JSON.parse(response.body) as File).size).to.equal(512 * 1024);
    expect(await api.exited).to.equal(0);
    await servers.stack.startApi();
  });

  it('lets the worker finish the job it runs, take no other, and exit 0', async () => {
    const big = await bigBinaryFile(300);
    const first = (await (await uploadFromDisk(servers.stack.url, big)).json()) as File;
    const second = (await (await uploadFromDisk(servers.stack.url, big)).json()) as File;
    rmSync(big);
    const worker = await servers.stack.startWorker();
    await waitFor(
      async () =>
        (await servers.stack.sql("SELECT 1 FROM files WHERE id = $1 AND status = 'processing'", [first.id])).length,
      'the job to start',
    );
    worker.child.kill('SIGTERM');
    expect(await worker.exited).to.equal(0);
    const rows = await servers.stack.sql<{ id: string; status: string; attempts: number }>(
      'SELECT id, status, attempts FROM files WHERE id = ANY($1::uuid[])',
      [[first.id, second.id]],
    );
    const byId = Object.fromEntries(rows.map((row) => [row.id, row]));
    expect(byId[first.id]).to.include({ status: 'processed', attempts: 1 });
    expect(byId[second.id]).to.include({ status: 'queued', attempts: 0 });
  });
});

describe('fault: SIGTERM the moment a process is ready', function () {
  this.timeout(60_000);
  afterEach(() => killStartedProcesses());

  it('stops a worker cleanly, exit 0, and leaves none of its parsers behind', async () => {
    const { worker } = await startWorkerProcess({ QUEUE_NAME: `ready-${process.pid}` });
    worker.child.kill('SIGTERM');
    expect(await worker.exited, worker.output().slice(-2_000)).to.equal(0);
    const left = readdirSync(os.tmpdir()).filter((name) => name.startsWith(`fp-parser-${worker.child.pid}-`));
    expect(left).to.deep.equal([]);
  });

  it('stops an API cleanly, exit 0', async () => {
    const [port, adminPort] = [await freePort(), await freePort()];
    const api = startProcess('dist/api/main.js', { PORT: String(port), ADMIN_PORT: String(adminPort) });
    await waitUntilReady(api, `http://127.0.0.1:${adminPort}/readyz`);
    api.child.kill('SIGTERM');
    expect(await api.exited, api.output().slice(-2_000)).to.equal(0);
  });
});
