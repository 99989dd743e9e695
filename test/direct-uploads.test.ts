// Direct uploads (POST /uploads/, a presigned PUT straight into the bucket, POST /uploads/{id}/complete)
// against a real Ceph RADOS Gateway, with the API, the worker and the reconciler of this process.
import { expect } from 'chai';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { HeadObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { PRESIGNED_CLOCK_SKEW_MS } from '../core/db/index.js';
import type { File } from '../core/fileRecord.js';
import { newId } from '../core/ids.js';
import type { S3BlobStore } from '../core/storage/index.js';
import { createMetrics } from '../core/telemetry/metrics.js';
import { Reconciler } from '../worker/reconciler.js';
import { sweepsFor } from '../worker/sweeps/index.js';
import { sql } from './support/db.js';
import { rowCount } from './support/leftovers.js';
import { expectProblem } from './support/problems.js';
import { s3StoreOn, sharedGateway, type Gateway } from './support/rgw.js';
import { hasBlob } from './support/stores.js';
import { sharedRedisFor, startService, testLogger, waitForStatus, type TestService } from './support/service.js';

interface Offer {
  id: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  expires_at: string;
  complete_url: string;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

describe('direct uploads', function () {
  this.timeout(60_000);
  let gateway: Gateway;
  let store: S3BlobStore;
  let service: TestService;

  before(async function () {
    gateway = await sharedGateway(this);
    store = await s3StoreOn(gateway);
    service = await startService({ storage: store, env: { MAX_UPLOAD_BYTES: '1MiB' } });
  });
  after(async () => {
    await service?.close();
    store?.close();
  });

  const announce = (body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${service.url}/uploads/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  const offerFor = async (bytes: Buffer, name = 'direct.txt', headers: Record<string, string> = {}) => {
    const answer = await announce({ name, size: bytes.length, sha256: sha256(bytes) }, headers);
    expect(answer.status).to.equal(201);
    return (await answer.json()) as Offer;
  };
  const put = (offer: Offer, bytes: Buffer) =>
    fetch(offer.url, { method: offer.method, headers: offer.headers, body: bytes });
  const complete = (offer: Offer) => fetch(offer.complete_url, { method: 'POST' });

  it('takes the bytes straight into the bucket and makes them a File that is processed', async () => {
    const bytes = Buffer.from('sent around the API\n'.repeat(500)); // more than the head sniffed
    const offer = await offerFor(bytes, 'notes.txt');
    expect(offer.method).to.equal('PUT');
    expect(new URL(offer.url).origin).to.equal(gateway.endpoint);
    expect(offer.headers).to.deep.equal({ 'Content-Length': String(bytes.length), 'If-None-Match': '*' });
    expect(offer.complete_url).to.equal(`${service.url}/uploads/${offer.id}/complete`);
    expect(Date.parse(offer.expires_at) - Date.now()).to.be.within(59 * 60_000, 61 * 60_000);
    // Nothing is a File until it is completed.
    await expectProblem(await fetch(`${service.url}/files/${offer.id}/`), 404, 'not_found');

    expect((await put(offer, bytes)).status).to.equal(200);
    const completed = await complete(offer);
    expect(completed.status).to.equal(201);
    const file = (await completed.json()) as File;
    expect(completed.headers.get('location')).to.equal(`${service.url}/files/${offer.id}/`);
    expect(file).to.include({ id: offer.id, name: 'notes.txt', size: bytes.length, sha256: sha256(bytes) });
    expect(file.kind).to.equal('text');
    const done = await waitForStatus(service.url, file.id);
    expect(done.status).to.equal('processed');
    expect(done.result).to.include({ sha256_verified: true, bytes_read: bytes.length });
    const content = await fetch(`${service.url}/files/${file.id}/content`);
    expect(Buffer.from(await content.arrayBuffer()).equals(bytes)).to.equal(true);
  });

  it('lets the bucket refuse a body of another length than the one signed in', async () => {
    const bytes = Buffer.from('exactly these bytes');
    const offer = await offerFor(bytes);
    const withBody = (body: Buffer) =>
      fetch(offer.url, { method: 'PUT', headers: { 'If-None-Match': '*' }, body }).then((answer) => answer.status);
    expect(await withBody(Buffer.concat([bytes, Buffer.from('!')]))).to.equal(403);
    expect(await withBody(bytes.subarray(1))).to.equal(403);
    await expectProblem(await complete(offer), 409, 'upload_incomplete');
  });

  it('answers 409 upload_incomplete before the bytes arrived, then completes once they did', async () => {
    const bytes = randomBytes(3000);
    const offer = await offerFor(bytes, 'later.bin');
    await expectProblem(await complete(offer), 409, 'upload_incomplete');
    await put(offer, bytes);
    expect((await complete(offer)).status).to.equal(201);
  });

  it('completes once: completing again answers the same File, and one row exists', async () => {
    const bytes = randomBytes(2000);
    const offer = await offerFor(bytes, 'twice.bin');
    await put(offer, bytes);
    const rows = await rowCount();
    const answers = await Promise.all([complete(offer), complete(offer), complete(offer)]);
    expect(answers.map((answer) => answer.status)).to.deep.equal([201, 201, 201]);
    const files = (await Promise.all(answers.map((answer) => answer.json()))) as File[];
    expect(new Set(files.map((file) => file.id))).to.deep.equal(new Set([offer.id]));
    expect(answers.filter((answer) => answer.headers.get('idempotent-replayed') === 'true')).to.have.length(2);
    expect(await rowCount()).to.equal(rows + 1);
  });

  it('fails the File with checksum_mismatch when the bytes are not the ones announced', async () => {
    const announced = Buffer.from('what the client said it would send');
    const sent = Buffer.from('what the client sent in its place!');
    expect(sent.length).to.equal(announced.length);
    const offer = await offerFor(announced, 'liar.txt');
    await put(offer, sent);
    expect((await complete(offer)).status).to.equal(201);
    const done = await waitForStatus(service.url, offer.id);
    expect(done).to.include({ status: 'failed', processed: false });
    expect(done.error!.code).to.equal('checksum_mismatch');
  });

  it('answers 422 size_mismatch for an object of another size, and removes it', async () => {
    const bytes = randomBytes(1000);
    const offer = await offerFor(bytes, 'resized.bin');
    // Only a writer with the bucket's own credentials can do this: the presigned PUT cannot.
    await store.client.send(
      new PutObjectCommand({ Bucket: store.bucket, Key: store.keyOf(offer.id), Body: bytes.subarray(0, 999) }),
    );
    await expectProblem(await complete(offer), 422, 'size_mismatch');
    expect(await hasBlob(store, offer.id)).to.equal(false);
    // The upload stays open: the right bytes complete it.
    await put(offer, bytes);
    expect((await complete(offer)).status).to.equal(201);
  });

  it('keeps a completed File whole when its presigned PUT is replayed: the bucket refuses it', async () => {
    const bytes = Buffer.from('the real content');
    const offer = await offerFor(bytes, 'kept.txt');
    expect((await put(offer, bytes)).status).to.equal(200);
    // The PUT can only create the object: a second one is refused before the File exists, and after.
    expect((await put(offer, Buffer.from('the fake content'))).status).to.equal(412);
    expect((await complete(offer)).status).to.equal(201);
    expect((await put(offer, Buffer.from('the fake content'))).status).to.equal(412);
    // Without the condition the signature does not match.
    expect((await fetch(offer.url, { method: 'PUT', body: 'the fake content' })).status).to.equal(403);
    const content = await fetch(`${service.url}/files/${offer.id}/content`);
    expect(Buffer.from(await content.arrayBuffer()).toString()).to.equal('the real content');
  });

  it('refuses a replay of the PUT after its File was deleted, keeps no bytes, and frees the key once the URL is dead', async () => {
    const bytes = Buffer.from('deleted for good');
    const offer = await offerFor(bytes, 'deleted.txt');
    expect((await put(offer, bytes)).status).to.equal(200);
    expect((await complete(offer)).status).to.equal(201);
    expect((await fetch(`${service.url}/files/${offer.id}/`, { method: 'DELETE' })).status).to.equal(204);

    // The URL is still valid, but the key is not free: the replay is refused, and the bucket holds no bytes of it.
    expect((await put(offer, bytes)).status).to.equal(412);
    expect(await storedBytes(offer.id)).to.equal(0);
    await expectProblem(await complete(offer), 404, 'not_found');
    await expectProblem(await fetch(`${service.url}/files/${offer.id}/`), 404, 'not_found');
    await expectProblem(await fetch(`${service.url}/files/${offer.id}/content`), 404, 'not_found');
    // A sweep that takes every orphan at once leaves the key barred while the URL lives.
    await reconcile(0);
    expect((await put(offer, bytes)).status).to.equal(412);
    expect(await storedBytes(offer.id)).to.equal(0);

    // Once the URL is dead, even by a bucket clock behind ours, the upload is forgotten and its key freed.
    await sql(
      `UPDATE direct_uploads SET expires_at = now() - $1 * interval '1 millisecond' - interval '1 second' WHERE id = $2`,
      [PRESIGNED_CLOCK_SKEW_MS, offer.id],
    );
    expect((await reconcile(3_600_000)).swept.direct_uploads!.removed).to.be.at.least(1);
    expect(await hasBlob(store, offer.id)).to.equal(false);
    expect(await sql('SELECT id FROM direct_uploads WHERE id = $1', [offer.id])).to.deep.equal([]);
    await expectProblem(await fetch(`${service.url}/files/${offer.id}/`), 404, 'not_found');
  });

  it('sweeps every orphan of the bucket in one run, and spares the bytes of live uploads and of Files', async () => {
    const pending = randomBytes(300);
    const pendingOffer = await offerFor(pending, 'pending.bin');
    await put(pendingOffer, pending);
    const kept = randomBytes(300);
    const keptOffer = await offerFor(kept, 'kept.bin');
    await put(keptOffer, kept);
    expect((await complete(keptOffer)).status).to.equal(201);
    const orphans = [newId(), newId(), newId()];
    for (const id of orphans) await store.put(id, Readable.from([Buffer.from('no row')]), { maxBytes: 100 });

    const report = await reconcile(0);
    expect(report.swept.orphan_blobs!.removed).to.be.at.least(orphans.length);
    for (const id of orphans) expect(await hasBlob(store, id), id).to.equal(false);
    expect(await storedBytes(pendingOffer.id)).to.equal(pending.length);
    expect(await storedBytes(keptOffer.id)).to.equal(kept.length);
    expect((await complete(pendingOffer)).status).to.equal(201);
  });

  it('keeps the bytes of a live upload older than ORPHAN_AFTER_MS (DIRECT_UPLOAD_EXPIRES_MS is longer), and completes it', async () => {
    const orphanAfterMs = 1_000;
    const bytes = randomBytes(400);
    const offer = await offerFor(bytes, 'slow-client.bin');
    expect(Date.parse(offer.expires_at) - Date.now()).to.be.above(orphanAfterMs);
    expect((await put(offer, bytes)).status).to.equal(200);
    const orphan = newId();
    await store.put(orphan, Readable.from([Buffer.from('no row')]), { maxBytes: 100 });
    // Both older than ORPHAN_AFTER_MS by the bucket's clock, whose LastModified counts whole seconds.
    await sleep(2 * orphanAfterMs + 100);

    for (let run = 0; run < 2; run++) await reconcile(orphanAfterMs);
    expect(await hasBlob(store, orphan), 'the orphan of the same age').to.equal(false);
    expect(await storedBytes(offer.id)).to.equal(bytes.length);
    expect((await complete(offer)).status).to.equal(201);
    const done = await waitForStatus(service.url, offer.id);
    expect(done).to.include({ status: 'processed', sha256: sha256(bytes) });
  });

  it('replays an announcement with the same Idempotency-Key and sha256, and refuses other bytes under it', async () => {
    const bytes = randomBytes(500);
    const key = `direct-${randomBytes(6).toString('hex')}`;
    const first = await offerFor(bytes, 'keyed.bin', { 'Idempotency-Key': key });
    const again = await announce(
      { name: 'keyed.bin', size: bytes.length, sha256: sha256(bytes) },
      { 'Idempotency-Key': key },
    );
    expect(again.status).to.equal(201);
    expect(again.headers.get('idempotent-replayed')).to.equal('true');
    expect(((await again.json()) as Offer).id).to.equal(first.id);
    const other = randomBytes(500);
    await expectProblem(
      await announce({ name: 'keyed.bin', size: other.length, sha256: sha256(other) }, { 'Idempotency-Key': key }),
      422,
      'idempotency_key_reused',
    );
  });

  it('refuses a bad announcement with a problem naming the fields', async () => {
    const bad = await announce({ name: '', size: -1, sha256: 'ABC' });
    const problem = await expectProblem(bad, 400, 'invalid_body');
    expect(problem.errors!.map((error) => error.field)).to.deep.equal(['name', 'size', 'sha256']);
    await expectProblem(
      await fetch(`${service.url}/uploads/`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: '{',
      }),
      400,
      'invalid_body',
    );
    await expectProblem(
      await fetch(`${service.url}/uploads/`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: '{}' }),
      415,
      'unsupported_media_type',
    );
    await expectProblem(
      await fetch(`${service.url}/uploads/`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ name: 'x'.repeat(20_000), size: 1, sha256: sha256(Buffer.from('x')) }),
      }),
      400,
      'invalid_body',
    );
    const valid = `"name": "a.bin", "size": 1, "sha256": "${sha256(Buffer.from('x'))}"`;
    for (const [body, field] of [
      [`{${valid}, "colour": "red"}`, 'colour'],
      [`{${valid}, "size": 2}`, 'size'],
      [`{"name": "\\u0000.bin", "size": 1, "sha256": "${sha256(Buffer.from('x'))}"}`, 'name'],
    ]) {
      const refused = await fetch(`${service.url}/uploads/`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body,
      });
      const fieldProblem = await expectProblem(refused, 400, 'invalid_body');
      expect(
        fieldProblem.errors!.map((error) => error.field),
        body,
      ).to.deep.equal([field]);
    }
    await expectProblem(await announce({ name: 'empty', size: 0, sha256: sha256(Buffer.alloc(0)) }), 400, 'file_empty');
    await expectProblem(
      await announce({ name: 'big', size: 1024 * 1024 + 1, sha256: sha256(Buffer.from('x')) }),
      413,
      'file_too_large',
    );
    // The limit itself is allowed, as for every way in.
    expect((await announce({ name: 'limit', size: 1024 * 1024, sha256: sha256(Buffer.from('x')) })).status).to.equal(
      201,
    );
  });

  it('answers 404 for an unknown upload, and for an expired one, whose bytes the reconciler removes', async () => {
    await expectProblem(await fetch(`${service.url}/uploads/not-an-id/complete`, { method: 'POST' }), 404, 'not_found');
    const unknown = '01900000-0000-7000-8000-000000000000';
    await expectProblem(
      await fetch(`${service.url}/uploads/${unknown}/complete`, { method: 'POST' }),
      404,
      'not_found',
    );

    const bytes = randomBytes(100);
    const offer = await offerFor(bytes, 'expiring.bin');
    await put(offer, bytes);
    await sql("UPDATE direct_uploads SET expires_at = now() - interval '1 second' WHERE id = $1", [offer.id]);
    await expectProblem(await complete(offer), 404, 'not_found');
    // Its URL may still work by a bucket clock behind ours: the upload is remembered until that cannot be.
    await sql(
      `UPDATE direct_uploads SET expires_at = now() - $1 * interval '1 millisecond' - interval '1 second' WHERE id = $2`,
      [PRESIGNED_CLOCK_SKEW_MS, offer.id],
    );
    const report = await reconcile(3_600_000);
    expect(report.swept.direct_uploads!.removed).to.be.at.least(1);
    expect(await hasBlob(store, offer.id)).to.equal(false);
    expect(await sql('SELECT id FROM direct_uploads WHERE id = $1', [offer.id])).to.deep.equal([]);
  });

  it('answers 501 direct_uploads_unavailable with the disk store', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-direct-disk-'));
    const disk = await startService({ worker: false, storageDir: dir });
    try {
      const body = JSON.stringify({ name: 'a', size: 1, sha256: sha256(Buffer.from('a')) });
      const headers = { 'Content-Type': 'application/json' };
      await expectProblem(
        await fetch(`${disk.url}/uploads/`, { method: 'POST', headers, body }),
        501,
        'direct_uploads_unavailable',
      );
      const id = '01900000-0000-7000-8000-000000000000';
      await expectProblem(
        await fetch(`${disk.url}/uploads/${id}/complete`, { method: 'POST' }),
        501,
        'direct_uploads_unavailable',
      );
    } finally {
      await disk.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  /** The size of the object at the blob's key; null when there is none. */
  async function storedBytes(id: string): Promise<number | null> {
    const head = await store.client
      .send(new HeadObjectCommand({ Bucket: store.bucket, Key: store.keyOf(id) }))
      .catch((err: { $metadata?: { httpStatusCode?: number } }) => {
        if (err.$metadata?.httpStatusCode === 404) return null;
        throw err;
      });
    return head ? (head.ContentLength ?? 0) : null;
  }

  /** One run of every sweep of the reconciler over this store, with orphans older than `orphanAfterMs` removed. */
  async function reconcile(orphanAfterMs: number) {
    const redis = sharedRedisFor(service.queueName);
    try {
      const config = {
        reconcileIntervalMs: 60_000,
        requeueAfterMs: 60_000,
        orphanAfterMs,
        webhookRetentionMs: 7 * 86_400_000,
        tusExpireAfterMs: 86_400_000,
      };
      const sweeps = sweepsFor({ db: service.db, queue: service.queue, storage: store, config });
      const reconciler = new Reconciler({ redis, logger: testLogger(), metrics: createMetrics(), config, sweeps });
      return await reconciler.runOnce();
    } finally {
      redis.close();
    }
  }
});
