import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type { File } from '../core/fileRecord.js';
import { sql } from './support/db.js';
import { snapshot } from './support/leftovers.js';
import { expectProblem } from './support/problems.js';
import { connect, readUntilClosed } from './support/raw.js';
import { startService, upload, type TestService } from './support/service.js';

const keyed = (key: string, extra: Record<string, string> = {}) => ({ headers: { 'Idempotency-Key': key, ...extra } });
let counter = 0;
const freshKey = () => `key-${Date.now()}-${counter++}`;

describe('Idempotency-Key on POST /upload/', () => {
  let service: TestService;
  before(async () => {
    service = await startService({ worker: false, env: { API_TOKENS: 'client-one-0123456789,client-two-0123456789' } });
  });
  after(() => service.close());
  const one = { Authorization: 'Bearer client-one-0123456789' };
  const two = { Authorization: 'Bearer client-two-0123456789' };

  it('replays the first File for a retry with the same bytes, creating nothing', async () => {
    const key = freshKey();
    const first = await upload(service.url, { content: 'exactly once' }, keyed(key, one));
    expect(first.status).to.equal(201);
    expect(first.headers.get('idempotent-replayed')).to.equal(null);
    const original = (await first.json()) as File;

    const before = await snapshot();
    const retry = await upload(service.url, { content: 'exactly once' }, keyed(key, one));
    expect(retry.status).to.equal(201);
    expect(retry.headers.get('idempotent-replayed')).to.equal('true');
    expect(retry.headers.get('location')).to.equal(first.headers.get('location'));
    expect(((await retry.json()) as File).id).to.equal(original.id);
    expect(await before.unchanged()).to.deep.equal({ rows: 0, files: [] });
  });

  it('answers 422 idempotency_key_reused for the same key with other bytes, keeping nothing', async () => {
    const key = freshKey();
    expect((await upload(service.url, { content: 'first bytes' }, keyed(key, one))).status).to.equal(201);
    const before = await snapshot();
    await expectProblem(
      await upload(service.url, { content: 'other bytes' }, keyed(key, one)),
      422,
      'idempotency_key_reused',
    );
    expect(await before.unchanged()).to.deep.equal({ rows: 0, files: [] });
  });

  it('answers 409 idempotency_key_in_use while the first request is still sending', async () => {
    const key = freshKey();
    const socket = await connect(service.url);
    const closed = readUntilClosed(socket);
    const body =
      '--XyZ\r\nContent-Disposition: form-data; name="file"; filename="slow.txt"\r\n\r\nslow bytes\r\n--XyZ--\r\n';
    socket.write(
      `POST /upload/ HTTP/1.1\r\nHost: x\r\nAuthorization: ${one.Authorization}\r\nIdempotency-Key: ${key}\r\n` +
        `Content-Type: multipart/form-data; boundary=XyZ\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 40)}`,
    );
    // Wait until the first request has claimed the key.
    const deadline = Date.now() + 5_000;
    while ((await sql('SELECT 1 FROM idempotency_keys WHERE key = $1', [key])).length === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const concurrent = await upload(service.url, { content: 'slow bytes' }, keyed(key, one));
    await expectProblem(concurrent, 409, 'idempotency_key_in_use');
    expect(concurrent.headers.get('retry-after')).to.equal('1');

    socket.write(body.slice(40));
    const { data } = await closed;
    expect(Number(data.split(' ')[1])).to.equal(201);
    const replay = await upload(service.url, { name: 'slow.txt', content: 'slow bytes' }, keyed(key, one));
    expect(replay.headers.get('idempotent-replayed')).to.equal('true');
  });

  it('forgets the key of a request that failed, so the client can retry at once', async () => {
    const key = freshKey();
    await expectProblem(await upload(service.url, { content: '' }, keyed(key, one)), 400, 'file_empty');
    const retry = await upload(service.url, { content: 'now with bytes' }, keyed(key, one));
    expect(retry.status).to.equal(201);
    expect(retry.headers.get('idempotent-replayed')).to.equal(null);
  });

  it('keeps the keys of different clients apart', async () => {
    const key = freshKey();
    const a = (await (await upload(service.url, { content: 'client one' }, keyed(key, one))).json()) as File;
    const b = await upload(service.url, { content: 'client two' }, keyed(key, two));
    expect(b.status).to.equal(201);
    expect(b.headers.get('idempotent-replayed')).to.equal(null);
    expect(((await b.json()) as File).id).to.not.equal(a.id);
  });

  it('remembers a key for 24 hours, then treats it as new', async () => {
    const key = freshKey();
    const first = (await (await upload(service.url, { content: 'yesterday' }, keyed(key, one))).json()) as File;
    await sql("UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE key = $1", [key]);
    const later = await upload(service.url, { content: 'today, other bytes' }, keyed(key, one));
    expect(later.status).to.equal(201);
    expect(((await later.json()) as File).id).to.not.equal(first.id);
  });

  it('takes over a key whose request was abandoned (its pod died mid-upload)', async () => {
    const key = freshKey();
    const scope = `token:${createHash('sha256').update('client-one-0123456789').digest('hex').slice(0, 32)}`;
    await sql('INSERT INTO idempotency_keys (scope, key) VALUES ($1, $2)', [scope, key]);
    await expectProblem(
      await upload(service.url, { content: 'after the crash' }, keyed(key, one)),
      409,
      'idempotency_key_in_use',
    );
    // No request outlives HTTP_REQUEST_TIMEOUT_MS (15 minutes by default): an older claim was abandoned.
    await sql("UPDATE idempotency_keys SET created_at = now() - interval '20 minutes' WHERE key = $1", [key]);
    const response = await upload(service.url, { content: 'after the crash' }, keyed(key, one));
    expect(response.status).to.equal(201);
  });

  it('creates the file anew when the first one was deleted since', async () => {
    const key = freshKey();
    const first = (await (await upload(service.url, { content: 'deleted later' }, keyed(key, one))).json()) as File;
    expect((await fetch(`${service.url}/files/${first.id}/`, { method: 'DELETE', headers: one })).status).to.equal(204);
    const again = await upload(service.url, { content: 'deleted later' }, keyed(key, one));
    expect(again.status).to.equal(201);
    expect(again.headers.get('idempotent-replayed')).to.equal(null);
    const replay = await upload(service.url, { content: 'deleted later' }, keyed(key, one));
    expect(((await replay.json()) as File).id).to.equal(((await again.json()) as File).id);
  });

  it('answers 400 invalid_idempotency_key to a key that is too long or not visible ASCII', async () => {
    for (const key of ['x'.repeat(256), 'has space', 'tab\there']) {
      await expectProblem(await upload(service.url, { content: 'x' }, keyed(key, one)), 400, 'invalid_idempotency_key');
    }
  });
});
