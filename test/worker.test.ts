import { expect } from 'chai';
import { openDatabase, type Database } from '../core/db/index.js';
import type { FileRow } from '../core/fileRecord.js';
import { newId } from '../core/ids.js';
import type { Metrics } from '../core/telemetry/metrics.js';
import type { BlobStore } from '../core/storage/index.js';
import { archiveProcessor } from '../worker/processors/archive.js';
import { imageProcessor } from '../worker/processors/image.js';
import { otherProcessor } from '../worker/processors/other.js';
import { ProcessingError, type Processor } from '../worker/processors/index.js';
import { sql } from './support/db.js';
import { TEST_ENV } from './support/env.js';
import { eventually } from './support/eventually.js';
import { png, zip } from './support/fixtures.js';
import { storedFiles } from './support/leftovers.js';
import { seriesValue } from './support/metrics.js';
import { brokenVersion, logFileVersions, type FileVersionLog } from './support/rowVersions.js';
import {
  flakyOnce,
  startService,
  startWorker,
  uploadFile,
  waitForStatus,
  type TestService,
} from './support/service.js';
import { overwriteBlob } from './support/stores.js';

/** The row a start answered, failing the test when it answered `redelivered` or nothing. */
function startedRow(outcome: FileRow | 'redelivered' | null): FileRow {
  if (outcome === null || outcome === 'redelivered') throw new Error(`expected a started row, got ${outcome}`);
  return outcome;
}

const jobsWithOutcome = (metrics: Metrics, outcome: string) =>
  seriesValue(metrics.registry, 'jobs_processed_total', { outcome });

describe('the worker', () => {
  describe('with files it cannot trust', () => {
    let service: TestService;
    before(async () => {
      service = await startService({ worker: false });
    });
    after(() => service.close());

    it('fails a file whose stored bytes no longer match its sha256, without retrying', async () => {
      const file = await uploadFile(service.url, { content: 'original bytes' });
      await overwriteBlob(service.storage, file.id, 'tampered bytes');
      const worker = await startWorker(service.queueName);
      try {
        const done = await waitForStatus(service.url, file.id);
        expect(done).to.include({ status: 'failed', processed: false, attempts: 1, result: null });
        expect(done.error!.code).to.equal('checksum_mismatch');
        expect(done.error!.message).to.match(/do not match/);
      } finally {
        await worker.close();
      }
    });

    it('fails a file whose bytes are missing with blob_missing', async () => {
      const file = await uploadFile(service.url, { content: 'vanishing bytes' });
      await service.storage.remove(file.id);
      const worker = await startWorker(service.queueName);
      try {
        const done = await waitForStatus(service.url, file.id);
        expect(done.status).to.equal('failed');
        expect(done.error!.code).to.equal('blob_missing');
      } finally {
        await worker.close();
      }
    });

    it('fails a file whose bytes vanish after their check with blob_missing, found where the parser reads them', async () => {
      const file = await uploadFile(service.url, {
        name: 'vanishing.zip',
        content: zip([{ name: 'a.txt', content: 'a' }]),
      });
      // The store as the processor sees it: the blob goes just before the parser is told where to read it.
      const vanishing: Processor = {
        ...archiveProcessor,
        process: (input) => {
          const storage: BlobStore = Object.assign(Object.create(input.storage) as BlobStore, {
            source: async (id: string, validForMs: number) => {
              await input.storage.remove(id);
              return input.storage.source(id, validForMs);
            },
          });
          return archiveProcessor.process({ ...input, storage });
        },
      };
      const worker = await startWorker(service.queueName, { processors: { archive: vanishing } });
      try {
        const done = await waitForStatus(service.url, file.id);
        expect(done).to.include({ status: 'failed', kind: 'archive', attempts: 1 });
        expect(done.error!.code).to.equal('blob_missing');
      } finally {
        await worker.close();
      }
    });

    it('runs a re-delivered job (its last attempt died with its worker) alone, so a crash charges only it', async () => {
      const files = await Promise.all(
        ['crashed', 'b', 'c', 'd'].map((name) =>
          uploadFile(service.url, { name: `${name}.txt`, content: `file ${name}` }),
        ),
      );
      // As a worker that died mid-job leaves it: processing, one attempt counted, its job delivered again.
      await sql("UPDATE files SET status = 'processing', attempts = 1 WHERE id = $1", [files[0]!.id]);
      const spans: Array<{ id: string; start: number; end: number }> = [];
      const timed = {
        ...otherProcessor,
        process: async (input: Parameters<typeof otherProcessor.process>[0]) => {
          const start = performance.now();
          await new Promise((resolve) => setTimeout(resolve, 150));
          spans.push({ id: input.file.id, start, end: performance.now() });
          return otherProcessor.process(input);
        },
      };
      const worker = await startWorker(service.queueName, { processors: { text: timed } });
      try {
        const done = await Promise.all(files.map((file) => waitForStatus(service.url, file.id)));
        expect(done.map((file) => [file.status, file.attempts])).to.deep.equal([
          ['processed', 2],
          ['processed', 1],
          ['processed', 1],
          ['processed', 1],
        ]);
        const crashed = spans.find((span) => span.id === files[0]!.id)!;
        const beside = spans.filter((span) => span !== crashed && span.start < crashed.end && crashed.start < span.end);
        expect(beside, 'jobs that ran beside the re-delivered one').to.deep.equal([]);
        // The others ran beside each other (concurrency 4): being alone is for re-deliveries only.
        const others = spans.filter((span) => span !== crashed);
        expect(
          others.some((span) =>
            others.some((other) => other !== span && other.start < span.end && span.start < other.end),
          ),
        ).to.equal(true);
      } finally {
        await worker.close();
      }
    });

    it('skips quietly the job of a file deleted before it ran', async () => {
      const file = await uploadFile(service.url, { content: 'deleted while queued' });
      // Delete the row only, leaving the job in the queue, as if DELETE raced the enqueue.
      await service.db.files.remove(file.id);
      const worker = await startWorker(service.queueName);
      try {
        const deadline = Date.now() + 5_000;
        while ((await jobsWithOutcome(worker.metrics, 'skipped')) === 0 && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 20));
        expect(await jobsWithOutcome(worker.metrics, 'skipped')).to.equal(1);
        expect((await service.queue.counts()).waiting).to.equal(0);
      } finally {
        await worker.close();
      }
    });
  });

  describe('when its file is deleted while it is processed', () => {
    let service: TestService;
    let thumbnailDue: () => void;
    let deleted: Promise<void>;
    let markDeleted: () => void;
    // The real image processor, held back just before it stores the thumbnail, until the test has deleted the file.
    const heldImages: Processor = {
      ...imageProcessor,
      process: (input) =>
        imageProcessor.process({
          ...input,
          storage: Object.assign(Object.create(input.storage) as BlobStore, {
            put: async (...args: Parameters<BlobStore['put']>) => {
              thumbnailDue();
              await deleted;
              return input.storage.put(...args);
            },
          }),
        }),
    };
    before(async () => {
      service = await startService({ processors: { image: heldImages } });
    });
    after(() => service.close());

    it('removes the thumbnail it wrote after the DELETE, so no derived file outlives its File', async () => {
      const due = new Promise<void>((resolve) => (thumbnailDue = resolve));
      deleted = new Promise<void>((resolve) => (markDeleted = resolve));
      const file = await uploadFile(service.url, { name: 'photo.png', content: png(640, 480) });
      await due;
      expect((await fetch(`${service.url}/files/${file.id}/`, { method: 'DELETE' })).status).to.equal(204);
      markDeleted();
      await eventually(() => jobsWithOutcome(service.workerMetrics, 'superseded'), 'the job ends');
      expect((await storedFiles()).filter((stored) => stored.includes(file.id))).to.deep.equal([]);
    });
  });

  describe('with transient errors', () => {
    it('retries with backoff and records the result once', async () => {
      const service = await startService({ processors: { text: flakyOnce() } });
      try {
        const file = await uploadFile(service.url, { content: 'flaky' });
        const done = await waitForStatus(service.url, file.id);
        expect(done).to.include({ status: 'processed', attempts: 2 });
        expect(await jobsWithOutcome(service.workerMetrics, 'retried')).to.equal(1);
        expect(await jobsWithOutcome(service.workerMetrics, 'processed')).to.equal(1);
      } finally {
        await service.close();
      }
    });

    it('fails the file with processing_failed once retries run out', async () => {
      const broken: Processor = {
        async process() {
          throw new Error('storage timed out');
        },
      };
      const service = await startService({ processors: { text: broken }, jobRetries: 2 });
      try {
        const file = await uploadFile(service.url, { content: 'doomed' });
        const done = await waitForStatus(service.url, file.id);
        expect(done).to.include({ status: 'failed', attempts: 3 });
        expect(done.error!.code).to.equal('processing_failed');
        expect(done.error!.message).to.not.contain('storage timed out');
      } finally {
        await service.close();
      }
    });
  });

  describe('every committed version of a file row', () => {
    let log: FileVersionLog;
    before(async () => {
      log = await logFileVersions(sql);
    });
    after(() => log.remove());

    it('is whole: status and result are written in one statement, by every transition', async () => {
      // Text files that process, fail for good, or fail once then process; an image (with a thumbnail); a reprocess.
      const flaky = flakyOnce();
      const text: Processor = {
        process(input) {
          if (input.file.name.startsWith('bad')) throw new ProcessingError('corrupt_file', 'It cannot be read.');
          if (input.file.name.startsWith('flaky')) return flaky.process(input);
          return otherProcessor.process(input);
        },
      };
      const service = await startService({ processors: { text } });
      try {
        const files = await Promise.all([
          ...Array.from({ length: 6 }, (_, n) => uploadFile(service.url, { name: `ok-${n}.txt`, content: `ok ${n}` })),
          uploadFile(service.url, { name: 'bad.txt', content: 'unreadable' }),
          uploadFile(service.url, { name: 'flaky.txt', content: 'once' }),
          uploadFile(service.url, { name: 'small.png', content: png(4, 4) }),
        ]);
        for (const file of files) await waitForStatus(service.url, file.id);
        const again = files[0].id;
        expect((await fetch(`${service.url}/files/${again}/reprocess`, { method: 'POST' })).status).to.equal(202);
        // The row is queued again now: this waits for the second run.
        expect((await waitForStatus(service.url, again)).status).to.equal('processed');

        const ids = files.map((file) => file.id);
        const committed = await log.committed(ids);
        const broken = committed.flatMap((version) => {
          const why = brokenVersion(version);
          return why ? [`${version.id} ${version.op} #${version.seq}: ${why}`] : [];
        });
        expect(broken, 'committed versions that are not whole').to.deep.equal([]);
        // It saw every kind of transition, so the check above had something to check.
        expect([...new Set(committed.map((version) => version.status))].sort()).to.deep.equal([
          'failed',
          'processed',
          'processing',
          'queued',
        ]);
        // Each file but the bad one processed once, and the reprocessed one once more.
        expect(committed.filter((version) => version.status === 'processed').length).to.equal(files.length - 1 + 1);
      } finally {
        await service.close();
      }
    });
  });

  describe('state transitions', () => {
    let db: Database;
    before(() => {
      db = openDatabase({ url: TEST_ENV.databaseUrl, poolMax: 2 });
    });
    after(() => db.close());

    const newRow = () =>
      db.files.insert({
        id: newId(),
        name: 'x',
        size: 1,
        content_type: 'text/plain',
        kind: 'text',
        sha256: 'a'.repeat(64),
      });

    it('lets only the current attempt record an outcome', async () => {
      const row = await newRow();
      const first = await db.files.startProcessing(row.id, 5);
      // A second delivery finds it processing: nothing changes until it asks to start it again.
      expect(await db.files.startProcessing(row.id, 5)).to.equal('redelivered');
      const second = await db.files.startProcessing(row.id, 5, { countRedelivery: true });
      expect([startedRow(first).attempts, startedRow(second).attempts]).to.deep.equal([1, 2]);
      expect(await db.files.finishProcessing(row.id, 1, { stale: true })).to.equal(false);
      expect(await db.files.failProcessing(row.id, 1, { code: 'x', message: 'stale' })).to.equal(false);
      expect(await db.files.finishProcessing(row.id, 2, { fresh: true })).to.equal(true);
      const stored = await db.files.findById(row.id);
      expect(stored).to.include({ status: 'processed', attempts: 2 });
      expect(stored!.result).to.deep.equal({ fresh: true });
    });

    it('answers each of many concurrent starts and finishes for its own row, batched or not', async () => {
      const rows = await Promise.all(Array.from({ length: 20 }, newRow));
      const gone = newId();
      const done = rows[0]!;
      await db.files.startProcessing(done.id, 5);
      await db.files.finishProcessing(done.id, 1, { early: true });
      const exhausted = rows[1]!;
      for (let n = 0; n < 2; n++) await db.files.startProcessing(exhausted.id, 2, { countRedelivery: true });

      const ids = [...rows.map((row) => row.id), gone];
      const started = await Promise.all(ids.map((id) => db.files.startProcessing(id, 2)));
      expect(started.at(-1)).to.equal(null);
      expect(started[0]).to.equal(null);
      expect(started[1]).to.include({ id: exhausted.id, status: 'failed', attempts: 2 });
      expect(startedRow(started[1]!).error!.code).to.equal('too_many_attempts');
      started
        .slice(2, -1)
        .forEach((row, n) => expect(row).to.include({ id: rows[n + 2]!.id, status: 'processing', attempts: 1 }));

      // Two deliveries of the same file in the same moment: each is told of the other, or counts its own attempt.
      const redelivered = await Promise.all([
        db.files.startProcessing(rows[2]!.id, 5),
        db.files.startProcessing(rows[2]!.id, 5),
      ]);
      expect(redelivered).to.deep.equal(['redelivered', 'redelivered']);
      const [again, twice] = await Promise.all([
        db.files.startProcessing(rows[2]!.id, 5, { countRedelivery: true }),
        db.files.startProcessing(rows[2]!.id, 5, { countRedelivery: true }),
      ]);
      expect([startedRow(again).attempts, startedRow(twice).attempts].sort()).to.deep.equal([2, 3]);

      // Results travel as an array of JSON texts: quotes, backslashes, braces and commas must survive it.
      const awkward = (n: number) => ({
        n,
        text: `"quoted", {braced}, back\\slash\n${'é😀'.repeat(n)}`,
        list: ['a,b', '{c}'],
      });
      const finished = await Promise.all(
        rows.slice(3).map((row, n) => db.files.finishProcessing(row.id, n % 2 ? 1 : 9, awkward(n))),
      );
      finished.forEach((recorded, n) => expect(recorded, `row ${n + 3}`).to.equal(n % 2 === 1));
      const stored = await db.files.findById(rows[4]!.id);
      expect(stored).to.include({ status: 'processed' });
      expect(stored!.result).to.deep.equal(awkward(1));
      expect(await db.files.findById(rows[3]!.id)).to.include({ status: 'processing' });
    });

    it('records a result whose strings hold NUL characters or lone surrogates, which jsonb refuses, with U+FFFD instead', async () => {
      const row = await newRow();
      await db.files.startProcessing(row.id, 5);
      const result = { title: 'a\u0000b', names: ['\u0000', 'cut inside a pair \ud83d'] };
      expect(await db.files.finishProcessing(row.id, 1, result)).to.equal(true);
      expect((await db.files.findById(row.id))!.result).to.deep.equal({
        title: 'a\ufffdb',
        names: ['\ufffd', 'cut inside a pair \ufffd'],
      });
    });

    it('never moves a finished file back to processing', async () => {
      const row = await newRow();
      await db.files.startProcessing(row.id, 5);
      await db.files.failProcessing(row.id, 1, { code: 'corrupt_file', message: 'bad' });
      expect(await db.files.startProcessing(row.id, 5)).to.equal(null);
      expect((await db.files.findById(row.id))!.status).to.equal('failed');
    });

    it('returns sizes as numbers, not the strings PostgreSQL bigint arrives as', async () => {
      const row = await newRow();
      expect(row.size).to.equal(1);
      expect((await db.files.findById(row.id))!.size).to.equal(1);
      expect((await db.files.list({ limit: 1, maxBytes: 1024 })).rows[0]!.size).to.be.a('number');
    });
  });
});
