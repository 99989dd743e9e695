// POST /files/reprocess, the bulk retry: through real HTTP against a real PostgreSQL and Redis, checking the answer,
// the rows, the jobs in the queue and, at the end, a worker processing the files again.
import { expect } from 'chai';
import type { File, FileKind, FileStatus } from '../core/fileRecord.js';
import { newId } from '../core/ids.js';
import { newSigningSecret } from '../core/webhooks/signing.js';
import { sql, truncateFiles } from './support/db.js';
import { expectProblem } from './support/problems.js';
import { startService, startWorker, uploadFile, waitForStatus, type TestService } from './support/service.js';

interface BulkResult {
  matched: number;
  requeued: number;
  dry_run: boolean;
  next_cursor: string | null;
}

interface StoredState {
  id: string;
  status: FileStatus;
  attempts: number;
  error: { code: string } | null;
  updated_at: Date;
}

const TOKEN = 'bulk-client-0123456789abcdef';

/** POSTs the body (JSON unless a string is given as is) to /files/reprocess. */
function reprocess(url: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}/files/reprocess`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** The answer of a bulk reprocess, failing the test unless it has the expected status. */
async function reprocessed(url: string, body: unknown, status = 202): Promise<BulkResult> {
  const response = await reprocess(url, body);
  expect(response.status, await response.clone().text()).to.equal(status);
  return (await response.json()) as BulkResult;
}

const BASE = Date.parse('2026-01-01T00:00:00.000Z');

/**
 * Rows straight into the table, with no bytes and no job (a worker would fail them as blob_missing): uploaded one
 * millisecond apart from `at`, the order a bulk reprocess walks them in. Answers their ids in that order.
 */
async function insertFiles(
  count: number,
  options: { status?: FileStatus; kind?: FileKind; code?: string | null; at?: number } = {},
): Promise<string[]> {
  const { status = 'failed', kind = 'text', at = BASE } = options;
  const code = options.code === undefined ? (status === 'failed' ? 'processing_failed' : null) : options.code;
  const ids = Array.from({ length: count }, () => newId());
  await sql(
    `INSERT INTO files (id, name, size, content_type, kind, sha256, status, attempts, error, uploaded_at)
     SELECT t.id, 'f', 1, 'text/plain', $2, repeat('0', 64), $3, 2,
            CASE WHEN $4::text IS NULL THEN NULL ELSE jsonb_build_object('code', $4::text, 'message', 'It broke.') END,
            to_timestamp($5::double precision / 1000) + (t.n - 1) * interval '1 millisecond'
     FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, n)`,
    [ids, kind, status, code, at],
  );
  return ids;
}

async function statesOf(ids: string[]): Promise<StoredState[]> {
  const rows = await sql<StoredState>(
    'SELECT id, status, attempts, error, updated_at FROM files WHERE id = ANY($1::uuid[])',
    [ids],
  );
  return ids.map((id) => rows.find((row) => row.id === id)!);
}

const statusesOf = async (ids: string[]) => (await statesOf(ids)).map((row) => row.status);

const waitingJobs = async (service: TestService) => (await service.queue.counts()).waiting;

describe('POST /files/reprocess', function () {
  this.timeout(30_000);
  let service: TestService;
  before(async () => {
    // No worker: what a call queued stays queued, and its jobs stay waiting, until a test starts one.
    service = await startService({ worker: false });
  });
  after(() => service.close());
  beforeEach(() => truncateFiles());

  it('puts the failed files of a kind back in the queue, and a worker processes them again', async () => {
    const worker = await startWorker(service.queueName);
    let files: File[];
    try {
      files = [
        await uploadFile(service.url, { name: 'a.txt', content: 'first text' }),
        await uploadFile(service.url, { name: 'b.txt', content: 'second text' }),
        await uploadFile(service.url, { name: 'c.bin', content: Buffer.from([0, 1, 2, 3, 255]) }),
      ];
      for (const file of files) await waitForStatus(service.url, file.id, ['processed']);
    } finally {
      await worker.close();
    }
    const ids = files.map((file) => file.id);
    await sql(
      `UPDATE files SET status = 'failed', result = NULL, error = '{"code": "processing_failed", "message": "x"}'
       WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    const jobs = await waitingJobs(service);

    expect(await reprocessed(service.url, { kind: 'text' })).to.deep.equal({
      matched: 2,
      requeued: 2,
      dry_run: false,
      next_cursor: null,
    });
    const [a, b, c] = await statesOf(ids);
    for (const row of [a!, b!]) expect(row).to.include({ status: 'queued', attempts: 0, error: null });
    expect(c).to.include({ status: 'failed' });
    expect(await waitingJobs(service), 'a job for each file re-queued').to.equal(jobs + 2);

    const again = await startWorker(service.queueName);
    try {
      for (const id of ids.slice(0, 2)) {
        expect(await waitForStatus(service.url, id, ['processed'])).to.include({ status: 'processed', attempts: 1 });
      }
    } finally {
      await again.close();
    }
    expect(await statusesOf(ids.slice(2))).to.deep.equal(['failed']);
  });

  it('takes failed files by default, processed ones only when asked, and never queued or processing ones', async () => {
    const failed = await insertFiles(2, { status: 'failed' });
    const processed = await insertFiles(2, { status: 'processed', at: BASE + 100 });
    const busy = [
      ...(await insertFiles(1, { status: 'queued', at: BASE + 200 })),
      ...(await insertFiles(1, { status: 'processing', at: BASE + 300 })),
    ];
    const busyBefore = await statesOf(busy);

    expect(await reprocessed(service.url, {})).to.include({ matched: 2, requeued: 2 });
    expect(await statusesOf(failed)).to.deep.equal(['queued', 'queued']);
    expect(await statusesOf(processed)).to.deep.equal(['processed', 'processed']);

    expect(await reprocessed(service.url, { status: 'processed' })).to.include({ matched: 2, requeued: 2 });
    expect(await statusesOf(processed)).to.deep.equal(['queued', 'queued']);
    expect(await statesOf(busy), 'queued and processing rows untouched').to.deep.equal(busyBefore);
  });

  it('with dry_run, answers 200 with what the call would take and changes nothing', async () => {
    const failed = await insertFiles(5);
    await insertFiles(3, { status: 'processed', at: BASE + 100 });
    const before = await statesOf(failed);
    const jobs = await waitingJobs(service);

    expect(await reprocessed(service.url, { dry_run: true }, 200)).to.deep.equal({
      matched: 5,
      requeued: 0,
      dry_run: true,
      next_cursor: null,
    });
    const first = await reprocessed(service.url, { dry_run: true, limit: 3 }, 200);
    expect(first).to.include({ matched: 3, requeued: 0 });
    expect(first.next_cursor).to.be.a('string');
    expect(await reprocessed(service.url, { dry_run: true, limit: 3, cursor: first.next_cursor }, 200)).to.include({
      matched: 2,
      next_cursor: null,
    });
    expect(await reprocessed(service.url, { dry_run: true, status: 'processed' }, 200)).to.include({ matched: 3 });

    expect(await statesOf(failed)).to.deep.equal(before);
    expect(await waitingJobs(service)).to.equal(jobs);
  });

  it('takes at most `limit` files, oldest first and across pages, and next_cursor goes on until none are left', async () => {
    // More than two pages of 500 at the default limit of 1000, and a remainder.
    const failed = await insertFiles(1203);
    const jobs = await waitingJobs(service);

    const first = await reprocessed(service.url, {});
    expect(first).to.include({ matched: 1000, requeued: 1000 });
    expect(first.next_cursor).to.be.a('string');
    const statuses = await statusesOf(failed);
    expect(statuses.slice(0, 1000).every((status) => status === 'queued')).to.equal(true);
    expect(statuses.slice(1000).every((status) => status === 'failed')).to.equal(true);
    expect(await waitingJobs(service)).to.equal(jobs + 1000);

    expect(await reprocessed(service.url, { cursor: first.next_cursor })).to.deep.equal({
      matched: 203,
      requeued: 203,
      dry_run: false,
      next_cursor: null,
    });
    expect((await statusesOf(failed)).every((status) => status === 'queued')).to.equal(true);
    expect(await waitingJobs(service)).to.equal(jobs + 1203);
  });

  it('answers next_cursor null when exactly `limit` files matched', async () => {
    await insertFiles(3);
    expect(await reprocessed(service.url, { limit: 3 })).to.include({ matched: 3, next_cursor: null });
    await insertFiles(3, { at: BASE + 100 });
    expect(await reprocessed(service.url, { limit: 3, dry_run: true }, 200)).to.include({ next_cursor: null });
  });

  it('does not take a file twice in one walk when it fails again behind the cursor', async () => {
    const failed = await insertFiles(4);
    const first = await reprocessed(service.url, { limit: 2 });
    expect(first.next_cursor).to.be.a('string');
    // The two re-queued files fail again before the client asks for the rest.
    await sql("UPDATE files SET status = 'failed' WHERE id = ANY($1::uuid[])", [failed.slice(0, 2)]);

    expect(await reprocessed(service.url, { limit: 2, cursor: first.next_cursor })).to.include({
      matched: 2,
      next_cursor: null,
    });
    expect(await statusesOf(failed)).to.deep.equal(['failed', 'failed', 'queued', 'queued']);
  });

  it('re-queues nothing when the same call is repeated: a queued file no longer matches', async () => {
    const failed = await insertFiles(3);
    expect(await reprocessed(service.url, {})).to.include({ requeued: 3 });
    const after = await statesOf(failed);
    const jobs = await waitingJobs(service);

    expect(await reprocessed(service.url, {})).to.deep.equal({
      matched: 0,
      requeued: 0,
      dry_run: false,
      next_cursor: null,
    });
    // And without the trailing slash's absence mattering.
    const slashed = await fetch(`${service.url}/files/reprocess/`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: '{}',
    });
    expect(slashed.status).to.equal(202);
    expect(await slashed.json()).to.include({ requeued: 0 });
    expect(await statesOf(failed), 'not even updated_at moved').to.deep.equal(after);
    expect(await waitingJobs(service)).to.equal(jobs);
  });

  it('filters by kind, error_code and uploaded_before, as GET /files/ does with the same parameters', async () => {
    const missing = await insertFiles(2, { code: 'blob_missing' });
    const broken = await insertFiles(2, { code: 'processing_failed', at: BASE + 100 });
    const images = await insertFiles(1, { kind: 'image', code: 'blob_missing', at: BASE + 200 });
    const query = async (params: string) => {
      const page = (await (await fetch(`${service.url}/files/?status=failed&${params}`)).json()) as { results: File[] };
      return page.results.map((file) => file.id).sort();
    };

    expect(await query('error_code=blob_missing&kind=text')).to.deep.equal([...missing].sort());
    expect(await reprocessed(service.url, { error_code: 'blob_missing', kind: 'text', dry_run: true }, 200)).to.include(
      { matched: 2 },
    );
    expect(await reprocessed(service.url, { error_code: 'blob_missing', kind: 'text' })).to.include({ requeued: 2 });
    expect(await statusesOf([...missing, ...broken, ...images])).to.deep.equal([
      'queued',
      'queued',
      'failed',
      'failed',
      'failed',
    ]);

    // Strictly before: the second of `broken` was uploaded at BASE + 101 ms, and is left.
    const before = new Date(BASE + 101).toISOString();
    expect(await query(`uploaded_before=${before}`)).to.deep.equal([broken[0]!]);
    expect(await reprocessed(service.url, { uploaded_before: before })).to.include({ requeued: 1 });
    expect(await statusesOf(broken)).to.deep.equal(['queued', 'failed']);
    // Any RFC 3339 form of an instant, an offset or digits below the millisecond included.
    expect(
      await reprocessed(service.url, { uploaded_before: '2026-01-01T02:00:00.101001+02:00', dry_run: true }, 200),
    ).to.include({ matched: 1 });

    expect(await reprocessed(service.url, { error_code: 'no_such_code' })).to.include({ matched: 0 });
    expect(await statusesOf(images)).to.deep.equal(['failed']);
  });

  it('answers 400 invalid_body with an entry per bad field, and changes nothing', async () => {
    const failed = await insertFiles(2);
    const before = await statesOf(failed);

    const problem = await expectProblem(
      await reprocess(service.url, {
        status: 'queued',
        kind: 'movie',
        error_code: '',
        uploaded_before: 'yesterday',
        dry_run: 'yes',
        limit: 0,
        cursor: 'abc',
        // Misspelt: never a silent real run.
        dryrun: true,
      }),
      400,
      'invalid_body',
    );
    expect(problem.errors!.map((error) => error.field)).to.have.members([
      'status',
      'kind',
      'error_code',
      'uploaded_before',
      'dry_run',
      'limit',
      'cursor',
      'dryrun',
    ]);
    for (const body of [
      { limit: 10_001 },
      { limit: 1.5 },
      { limit: '10' },
      { status: 'processing' },
      { error_code: 'x'.repeat(201) },
      { uploaded_before: '2026-02-30T00:00:00Z' },
      { uploaded_before: '2026-01-01' },
      { uploaded_before: 1767225600000 },
    ]) {
      const bad = await expectProblem(await reprocess(service.url, body), 400, 'invalid_body');
      expect(
        bad.errors!.map((error) => error.field),
        JSON.stringify(body),
      ).to.deep.equal(Object.keys(body));
    }
    for (const body of ['not json', '[]', 'null', '']) {
      await expectProblem(await reprocess(service.url, body), 400, 'invalid_body');
    }
    await expectProblem(
      await fetch(`${service.url}/files/reprocess`, { method: 'POST', body: 'status=failed' }),
      415,
      'unsupported_media_type',
    );
    expect(await statesOf(failed)).to.deep.equal(before);
    expect(await reprocessed(service.url, { limit: 10_000, dry_run: true }, 200)).to.include({ matched: 2 });
  });

  it('sends no webhook event for the files it re-queues', async () => {
    const endpoint = (await service.db.webhooks.createEndpoint(
      {
        id: newId(),
        url: 'https://hooks.example.com/files',
        events: ['file.processed', 'file.failed', 'file.deleted'],
        description: '',
        secret: newSigningSecret(),
        baseUrl: service.url,
      },
      Number.MAX_SAFE_INTEGER,
    ))!;
    const events = async (ids: string[]) =>
      Number(
        (await sql<{ n: string }>('SELECT count(*) AS n FROM webhook_events WHERE file_id = ANY ($1)', [ids]))[0]!.n,
      );
    try {
      const failed = await insertFiles(3);
      expect(await reprocessed(service.url, {})).to.include({ requeued: 3 });
      expect(await events(failed)).to.equal(0);
      // The endpoint does hear of a file settling: a File failing again is an event.
      await sql("UPDATE files SET status = 'failed' WHERE id = $1", [failed[0]]);
      expect(await events(failed)).to.equal(1);
    } finally {
      await service.db.webhooks.removeEndpoint(endpoint.id);
    }
  });

  it('needs a bearer token when tokens are configured', async () => {
    const guarded = await startService({ worker: false, env: { API_TOKENS: TOKEN } });
    try {
      const failed = await insertFiles(1);
      const refused = await reprocess(guarded.url, {});
      await expectProblem(refused, 401, 'unauthorized');
      expect(await statusesOf(failed)).to.deep.equal(['failed']);
      const allowed = await reprocess(guarded.url, {}, { Authorization: `Bearer ${TOKEN}` });
      expect(allowed.status).to.equal(202);
      expect(await statusesOf(failed)).to.deep.equal(['queued']);
    } finally {
      await guarded.close();
    }
  });

  it('answers 503 overloaded above MAX_BACKLOG waiting jobs, as uploads do, and changes nothing', async () => {
    const busy = await startService({ worker: false, env: { MAX_BACKLOG: '1' } });
    try {
      for (let i = 0; i < 2; i++) await uploadFile(busy.url, { content: `backlog ${i}` });
      // The backlog is read in the background (every 100 ms in tests).
      await new Promise((resolve) => setTimeout(resolve, 300));
      const failed = await insertFiles(1);
      const response = await reprocess(busy.url, {});
      await expectProblem(response, 503, 'overloaded');
      expect(await statusesOf(failed)).to.deep.equal(['failed']);
    } finally {
      await busy.close();
    }
  });
});
