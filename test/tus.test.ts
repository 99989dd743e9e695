// Resumable uploads over tus 1.0.0, with tus-js-client, the protocol's own JavaScript client, against the API.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as tus from 'tus-js-client';
import type { File } from '../core/fileRecord.js';
import { sql } from './support/db.js';
import { expectProblem } from './support/problems.js';
import { startService, waitForStatus, type TestService } from './support/service.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** Uploads `bytes` with tus-js-client; resolves with the upload URL once the last byte is stored. */
export function tusUpload(
  endpoint: string,
  bytes: Buffer,
  options: Partial<tus.UploadOptions> = {},
): Promise<{ url: string; upload: tus.Upload }> {
  return new Promise((resolve, reject) => {
    const upload = new tus.Upload(bytes, {
      endpoint,
      chunkSize: 5 * 1024 * 1024,
      metadata: { filename: 'video.bin', filetype: 'application/octet-stream' },
      retryDelays: [],
      ...options,
      onSuccess: () => resolve({ url: upload.url!, upload }),
      onError: reject,
    });
    upload.start();
  });
}

const idOf = (url: string) => url.split('/').pop()!;

/** How many Files hold these bytes (random bytes: only the upload's own File may). */
const filesWith = async (bytes: Buffer): Promise<number> =>
  Number((await sql<{ count: string }>('SELECT count(*) FROM files WHERE sha256 = $1', [sha256(bytes)]))[0]!.count);

const TUS = { 'Tus-Resumable': '1.0.0' };
const CHUNK = { ...TUS, 'Content-Type': 'application/offset+octet-stream' };
const base64 = (text: string) => Buffer.from(text).toString('base64');

/** Creates an upload of `length` bytes by hand (null: a length the client gives later); its URL. */
async function create(base: string, length: number | null, headers: Record<string, string> = {}): Promise<string> {
  const response = await fetch(`${base}/uploads/tus/`, {
    method: 'POST',
    headers: {
      ...TUS,
      ...(length === null ? { 'Upload-Defer-Length': '1' } : { 'Upload-Length': String(length) }),
      'Upload-Metadata': `filename ${base64('hand.bin')}`,
      ...headers,
    },
  });
  expect(response.status, await response.clone().text()).to.equal(201);
  return response.headers.get('location')!;
}

const offsetOf = async (url: string): Promise<number> => {
  const response = await fetch(url, { method: 'HEAD', headers: TUS });
  expect(response.status).to.equal(200);
  return Number(response.headers.get('upload-offset'));
};

const patch = (url: string, offset: number, body: Buffer, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'PATCH', headers: { ...CHUNK, 'Upload-Offset': String(offset), ...headers }, body });

/** Makes PostgreSQL refuse to insert the File `id` (a trigger of this run's database) until stop(). */
async function refuseInsertsOf(id: string): Promise<{ stop(): Promise<void> }> {
  const name = `refuse_${id.replaceAll('-', '_')}`;
  await sql(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'refused by the test'; END $$`);
  await sql(
    `CREATE TRIGGER ${name} BEFORE INSERT ON files FOR EACH ROW WHEN (NEW.id = '${id}') EXECUTE FUNCTION ${name}()`,
  );
  return { stop: () => sql(`DROP FUNCTION ${name}() CASCADE`).then(() => undefined) };
}

/** A TCP proxy to `target` that cuts the first connection which has carried more than `cutAfter` bytes upstream. */
async function cuttingProxy(target: string, cutAfter: number) {
  const { hostname, port } = new URL(target);
  let cut = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(port), hostname);
    let sent = 0;
    client.on('data', (chunk: Buffer) => {
      sent += chunk.length;
      if (cut === 0 && sent > cutAfter) {
        cut++;
        client.destroy();
        upstream.destroy();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.end());
    upstream.on('close', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cuts: () => cut,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

describe('resumable uploads (tus)', function () {
  this.timeout(60_000);
  let service: TestService;
  before(async () => {
    service = await startService({ env: { MAX_UPLOAD_BYTES: '64MiB' } });
  });
  after(() => service.close());

  it('takes 50 MiB in 5 MiB chunks and makes one File of it, with the same sha256', async () => {
    const bytes = randomBytes(50 * 1024 * 1024);
    const { url } = await tusUpload(`${service.url}/uploads/tus/`, bytes);
    const file = (await (await fetch(`${service.url}/files/${idOf(url)}/`)).json()) as File;
    expect(file).to.include({ id: idOf(url), size: bytes.length, sha256: sha256(bytes), name: 'video.bin' });
    expect((await waitForStatus(service.url, file.id)).status).to.equal('processed');
    // The File answers for the upload from now on: HEAD gives its whole length.
    expect(await offsetOf(url)).to.equal(bytes.length);
    expect(await filesWith(bytes)).to.equal(1);
  });

  it('resumes from the offset the server reports after the connection is cut mid-chunk', async () => {
    const bytes = randomBytes(12 * 1024 * 1024);
    // Cut 2 MiB into the second chunk; tus-js-client asks for the offset and sends the rest.
    const proxy = await cuttingProxy(service.url, 7 * 1024 * 1024);
    try {
      const { url } = await tusUpload(`${proxy.url}/uploads/tus/`, bytes, { retryDelays: [0, 200, 500] });
      expect(proxy.cuts()).to.equal(1);
      const file = await waitForStatus(service.url, idOf(url));
      expect(file).to.include({ size: bytes.length, sha256: sha256(bytes), status: 'processed' });
      expect(await filesWith(bytes)).to.equal(1);
    } finally {
      await proxy.close();
    }
  });

  it('keeps the bytes whole when two clients race on one upload: one of them is refused', async () => {
    const bytes = randomBytes(6 * 1024 * 1024);
    const url = await create(service.url, bytes.length);
    const [first, second] = await Promise.all([patch(url, 0, bytes), patch(url, 0, bytes)]);
    const statuses = [first.status, second.status].sort();
    expect(
      statuses.some((status) => status === 409 || status === 423),
      `answers ${statuses.join(', ')}`,
    ).to.equal(true);
    // Whatever was stored is a prefix of the file: the rest from the server's offset completes it.
    const offset = await offsetOf(url);
    if (offset < bytes.length) expect((await patch(url, offset, bytes.subarray(offset))).status).to.equal(204);
    const file = await waitForStatus(service.url, idOf(url));
    expect(file).to.include({ size: bytes.length, sha256: sha256(bytes) });
    expect(await filesWith(bytes)).to.equal(1);
  });

  it('refuses a chunk whose Upload-Checksum does not match with 460, and the offset does not move', async () => {
    const bytes = randomBytes(64 * 1024);
    const url = await create(service.url, bytes.length);
    const digest = (algorithm: string, data: Buffer) => createHash(algorithm).update(data).digest('base64');
    const wrong = await patch(url, 0, bytes, { 'Upload-Checksum': `sha1 ${digest('sha1', Buffer.from('other'))}` });
    await expectProblem(wrong, 460, 'upload_checksum_mismatch');
    expect(wrong.headers.get('tus-resumable')).to.equal('1.0.0');
    expect(await offsetOf(url)).to.equal(0);
    await expectProblem(await patch(url, 0, bytes, { 'Upload-Checksum': 'crc32 AAAA' }), 400, 'invalid_tus_request');
    const right = await patch(url, 0, bytes, { 'Upload-Checksum': `sha256 ${digest('sha256', bytes)}` });
    expect(right.status).to.equal(204);
    expect((await waitForStatus(service.url, idOf(url))).sha256).to.equal(sha256(bytes));
  });

  it('refuses a creation carrying data whose Upload-Checksum does not match with 460, and keeps nothing', async () => {
    const bytes = randomBytes(64 * 1024);
    const digest = (data: Buffer) => createHash('sha256').update(data).digest('base64');
    const createWith = (checksum: string) =>
      fetch(`${service.url}/uploads/tus/`, {
        method: 'POST',
        headers: {
          ...CHUNK,
          'Upload-Length': String(bytes.length),
          'Upload-Metadata': `filename ${base64('whole.bin')}`,
          'Upload-Checksum': `sha256 ${checksum}`,
        },
        body: bytes,
      });
    // The whole file in the creation: accepted, it would be a File at once.
    const wrong = await createWith(digest(Buffer.from('other')));
    await expectProblem(wrong, 460, 'upload_checksum_mismatch');
    expect(wrong.headers.get('location')).to.equal(null);
    expect(await filesWith(bytes)).to.equal(0);

    const right = await createWith(digest(bytes));
    expect(right.status).to.equal(201);
    expect(Number(right.headers.get('upload-offset'))).to.equal(bytes.length);
    expect((await waitForStatus(service.url, idOf(right.headers.get('location')!))).sha256).to.equal(sha256(bytes));
    expect(await filesWith(bytes)).to.equal(1);
  });

  it('takes an upload whose length comes later (Upload-Defer-Length), and refuses it empty once the length is 0', async () => {
    const bytes = randomBytes(100 * 1024);
    const url = await create(service.url, null);
    const head = await fetch(url, { method: 'HEAD', headers: TUS });
    expect(head.headers.get('upload-defer-length')).to.equal('1');
    expect((await patch(url, 0, bytes.subarray(0, 40_000))).status).to.equal(204);
    const last = await patch(url, 40_000, bytes.subarray(40_000), { 'Upload-Length': String(bytes.length) });
    expect(last.status, await last.text()).to.equal(204);
    const file = await waitForStatus(service.url, idOf(url));
    expect(file).to.include({ size: bytes.length, sha256: sha256(bytes), name: 'hand.bin' });
    expect(await filesWith(bytes)).to.equal(1);

    const empty = await create(service.url, null);
    await expectProblem(await patch(empty, 0, Buffer.alloc(0), { 'Upload-Length': '0' }), 400, 'invalid_tus_request');
    expect((await fetch(`${service.url}/files/${idOf(empty)}/`)).status).to.equal(404);
  });

  for (const next of ['HEAD', 'PATCH'] as const) {
    it(`makes the File of a finished upload whose completion failed at the next ${next}, and one File only`, async () => {
      const bytes = randomBytes(300 * 1024);
      const url = await create(service.url, bytes.length);
      expect((await patch(url, 0, bytes.subarray(0, 100_000))).status).to.equal(204);
      const refusal = await refuseInsertsOf(idOf(url));
      try {
        // The last byte is stored, and the database refuses the File.
        const last = await patch(url, 100_000, bytes.subarray(100_000));
        expect(last.status, await last.clone().text()).to.equal(500);
        expect(await filesWith(bytes)).to.equal(0);
      } finally {
        await refusal.stop();
      }
      if (next === 'HEAD') {
        expect(await offsetOf(url)).to.equal(bytes.length);
      } else {
        // The client sends its last chunk again, from the offset it had: the upload is a File by then.
        const again = await patch(url, 100_000, bytes.subarray(100_000));
        await expectProblem(again, 409, 'upload_offset_mismatch');
      }
      const file = await waitForStatus(service.url, idOf(url));
      expect(file).to.include({ size: bytes.length, sha256: sha256(bytes), name: 'hand.bin', status: 'processed' });
      expect(await offsetOf(url)).to.equal(bytes.length);
      expect(await filesWith(bytes)).to.equal(1);
    });
  }

  it('advertises its extensions, checksum algorithms and Tus-Max-Size', async () => {
    const response = await fetch(`${service.url}/uploads/tus/`, {
      method: 'OPTIONS',
      headers: { ...TUS, Origin: 'https://elsewhere.example' },
    });
    // CORS is CORS_ORIGINS' to allow (off here), not @tus/server's, which would answer every origin.
    expect(response.headers.get('access-control-allow-origin')).to.equal(null);
    expect(response.status).to.be.oneOf([200, 204]);
    const extensions = response.headers.get('tus-extension')!.split(',');
    expect(extensions).to.include.members([
      'creation',
      'creation-with-upload',
      'termination',
      'expiration',
      'checksum',
    ]);
    expect(response.headers.get('tus-checksum-algorithm')).to.contain('sha256');
    expect(response.headers.get('tus-max-size')).to.equal(String(64 * 1024 * 1024));
  });

  it('refuses an upload over Tus-Max-Size with 413, and an empty one', async () => {
    const over = await fetch(`${service.url}/uploads/tus/`, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': String(64 * 1024 * 1024 + 1) },
    });
    await expectProblem(over, 413, 'file_too_large');
    const empty = await fetch(`${service.url}/uploads/tus/`, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': '0' },
    });
    await expectProblem(empty, 400, 'invalid_tus_request');
  });

  it('says when an upload expires, removes it once expired, and removes one at once on DELETE', async () => {
    const url = await create(service.url, 1024);
    const created = await fetch(url, { method: 'HEAD', headers: TUS });
    expect(created.status).to.equal(200);
    expect(await patch(url, 0, randomBytes(100)).then((response) => response.headers.get('upload-expires'))).to.match(
      /GMT$/,
    );
    // As the reconciler does, with an expiry already past.
    expect(await service.storage.resumable(1).removeExpired(new Date(Date.now() + 60_000))).to.be.at.least(1);
    expect((await fetch(url, { method: 'HEAD', headers: TUS })).status).to.be.oneOf([404, 410]);
    expect((await fetch(`${service.url}/files/${idOf(url)}/`)).status).to.equal(404);

    const abandoned = await create(service.url, 1024);
    expect((await fetch(abandoned, { method: 'DELETE', headers: TUS })).status).to.equal(204);
    expect((await fetch(abandoned, { method: 'HEAD', headers: TUS })).status).to.be.oneOf([404, 410]);
  });

  it('answers tus codes, never a 500 or a path, to a DELETE racing the last PATCH, and ends with one File or none', async () => {
    const outcomes = new Set<string>();
    for (let round = 0; round < 30; round++) {
      const bytes = randomBytes(256 * 1024);
      const url = await create(service.url, bytes.length);
      const patching = patch(url, 0, bytes);
      await new Promise((resolve) => setTimeout(resolve, round % 6));
      const [patched, deleted] = await Promise.all([patching, fetch(url, { method: 'DELETE', headers: TUS })]);
      const answers = [await patched.text(), await deleted.text()].join(' ');
      expect(answers).not.to.match(/ENOENT|\/tmp\/|fp_test_|Something went wrong/);
      const files = await filesWith(bytes);
      // The PATCH first: its File, and a finished upload cannot be terminated (400). The DELETE first: nothing.
      if (patched.status === 204) expect([deleted.status, files], answers).to.deep.equal([400, 1]);
      else expect([patched.status, deleted.status, files], answers).to.deep.equal([404, 204, 0]);
      outcomes.add(`${patched.status}/${deleted.status}`);
    }
    expect([...outcomes]).to.include('204/400');
  });
});

describe('resumable uploads (tus) with tokens', function () {
  this.timeout(60_000);
  const token = 'tus-test-token-0123456789';
  let service: TestService;
  before(async () => {
    service = await startService({ env: { API_TOKENS: token } });
  });
  after(() => service.close());

  it('needs the bearer token like every route', async () => {
    const refused = await fetch(`${service.url}/uploads/tus/`, {
      method: 'POST',
      headers: { ...TUS, 'Upload-Length': '10' },
    });
    await expectProblem(refused, 401, 'unauthorized');
    const bytes = randomBytes(1000);
    const { url } = await tusUpload(`${service.url}/uploads/tus/`, bytes, {
      headers: { Authorization: `Bearer ${token}` },
    });
    const file = await fetch(`${service.url}/files/${idOf(url)}/`, { headers: { Authorization: `Bearer ${token}` } });
    expect(((await file.json()) as File).sha256).to.equal(sha256(bytes));
  });
});
