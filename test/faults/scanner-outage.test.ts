// The malware scanner away, with the service as real processes and a real clamd: uploads go on, nothing is served
// before its verdict, no file fails for the scanner's absence, and once clamd is back every file is scanned once.
import { expect } from 'chai';
import { Redis } from 'ioredis';
import { rmSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { File } from '../../core/fileRecord.js';
import type { FileJobData } from '../../core/queue/index.js';
import { EICAR, EICAR_SIGNATURE, reportedName, requireClamd, startClamd, type Clamd } from '../support/clamd.js';
import { bigBinaryFile, png, uploadFromDisk } from '../support/fixtures.js';
import { expectProblem } from '../support/problems.js';
import { upload, type UploadPart } from '../support/service.js';
import { statusCounts, usePrivateStack, waitFor, waitUntilSettled } from '../support/stack.js';

/** How long clamd stays away while the files come in (the figure). */
const OUTAGE_MS = 30_000;
const FILES = 200;
const INFECTED = 10;
const IMAGES = 10;

interface Row {
  id: string;
  status: string;
  attempts: number;
  error_code: string | null;
  scan_status: string | null;
  has_thumbnail: boolean;
}

/** Every job the queue keeps in Redis (the test's own server: one queue), with its waits and stored size. */
async function storedJobs(redisUrl: string): Promise<Array<{ waits: number; bytes: number }>> {
  const redis = new Redis(redisUrl);
  try {
    const keys = await redis.keys('*:jobs');
    expect(keys, 'job hashes').to.have.length(1);
    return Object.values(await redis.hgetall(keys[0]!)).map((stored) => ({
      waits: (JSON.parse(stored) as { data: FileJobData }).data.waits ?? 0,
      bytes: Buffer.byteLength(stored),
    }));
  } finally {
    redis.disconnect();
  }
}

describe('fault: the malware scanner (clamd) is away', function () {
  // Waits double from JOB_BACKOFF_MS (200 ms, FAST_RECOVERY): 25.6 s by the outage's end, so a file may wait about
  // that long again after clamd returns before its next try.
  this.timeout(300_000);
  let clamd: Clamd;
  // SCAN_CLAMD is set once clamd runs (its port is chosen then): this hook runs before usePrivateStack's.
  const env: Record<string, string> = {};
  before(async function () {
    requireClamd(this);
    clamd = await startClamd();
    env.SCAN_CLAMD = clamd.address;
  });
  const servers = usePrivateStack(env, 1);
  after(async () => {
    await clamd?.destroy();
  });

  /** A series of the worker's /metrics (`name` or `name{labels}`, as exposed), 0 when absent. */
  const workerSeries = async (series: string): Promise<number> => {
    const text = await (await fetch(`${servers.stack.workerAdmins[0]}/metrics`)).text();
    const line = text.split('\n').find((candidate) => candidate.startsWith(`${series} `));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  };
  const rowsOf = (ids: string[]) =>
    servers.stack.sql<Row>(
      `SELECT id, status, attempts, error->>'code' AS error_code, scan->>'status' AS scan_status, has_thumbnail
       FROM files WHERE id = ANY($1::uuid[])`,
      [ids],
    );

  it('accepts every upload while it is away, serves nothing unscanned, and scans every file once when it returns', async () => {
    const { url } = servers.stack;
    const plan: Array<UploadPart & { infected: boolean; image: boolean }> = Array.from({ length: FILES }, (_, n) => {
      if (n % (FILES / INFECTED) === 0) {
        // Half of them images with EICAR appended: valid PNGs that would have a thumbnail if they were clean.
        return (n / (FILES / INFECTED)) % 2 === 0
          ? {
              name: `infected-${n}.png`,
              content: Buffer.concat([png(16, 16, n), Buffer.from(EICAR)]),
              infected: true,
              image: true,
            }
          : { name: `infected-${n}.txt`, content: `note ${n}\n${EICAR}\n`, infected: true, image: false };
      }
      if (n % (FILES / INFECTED) === 1 && n < (FILES / INFECTED) * IMAGES)
        return { name: `picture-${n}.png`, content: png(16, 16, n), type: 'image/png', infected: false, image: true };
      return { name: `notes-${n}.txt`, content: `clean file number ${n}\n`.repeat(20), infected: false, image: false };
    });
    expect(plan.filter((part) => part.infected)).to.have.length(INFECTED);
    expect(plan.filter((part) => part.image && !part.infected)).to.have.length(IMAGES);

    await clamd.stop();
    const stoppedAt = Date.now();

    const statuses: number[] = [];
    const clean: string[] = [];
    const infected: string[] = [];
    const images: string[] = [];
    let next = 0;
    const client = async () => {
      while (next < plan.length) {
        const part = plan[next++]!;
        const response = await upload(url, part);
        statuses.push(response.status);
        if (response.status !== 201) continue;
        const { id } = (await response.json()) as File;
        (part.infected ? infected : clean).push(id);
        if (part.image && !part.infected) images.push(id);
      }
    };

    // From its upload to the end, an infected file's bytes are asked for again and again: never one is served.
    const answers: Record<number, number> = {};
    let leaked = 0;
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const id of [...infected]) {
          for (const what of ['content', 'thumbnail']) {
            const response = await fetch(`${url}/files/${id}/${what}`);
            const body = await response.text();
            answers[response.status] = (answers[response.status] ?? 0) + 1;
            if (response.status === 200 || body.includes(EICAR)) leaked++;
          }
        }
        await sleep(50);
      }
    })();

    try {
      await Promise.all([client(), client(), client(), client()]);
      expect(
        statuses.filter((status) => status !== 201),
        'uploads refused',
      ).to.deep.equal([]);
      expect(Date.now() - stoppedAt, 'uploads took the whole outage').to.be.lessThan(OUTAGE_MS);

      // While it is away: the worker says so, a waiting file's bytes are not served, and no file fails or settles.
      await waitFor(async () => (await workerSeries('scanner_up')) === 0 || undefined, 'scanner_up 0');
      expect(await workerSeries('scans_total{verdict="error"}')).to.be.greaterThan(0);
      const waiting = clean.find((id) => !images.includes(id))!;
      await expectProblem(await fetch(`${url}/files/${waiting}/content`), 409, 'scan_pending');
      await sleep(stoppedAt + OUTAGE_MS - Date.now());
      const during = await statusCounts(servers.stack);
      expect(Object.keys(during).sort(), 'statuses while clamd is away').to.satisfy((statusesSeen: string[]) =>
        statusesSeen.every((status) => status === 'queued' || status === 'processing'),
      );
      expect(Object.values(during).reduce((sum, count) => sum + count, 0)).to.equal(FILES);
      const [attempts] = await servers.stack.sql<{ most: number }>('SELECT max(attempts) AS most FROM files');
      expect(attempts!.most, 'attempts counted while clamd is away').to.be.at.most(1);
      expect(await workerSeries('scanner_up')).to.equal(0);
      // However often a file waited, its job in Redis holds what one wait leaves, not a record of every wait.
      const jobs = await storedJobs(servers.redis.url);
      expect(jobs).to.have.length(FILES);
      expect(Math.max(...jobs.map((job) => job.waits)), 'waits of the longest waiting file').to.be.at.least(5);
      expect(Math.max(...jobs.map((job) => job.bytes)), 'bytes of the largest stored job').to.be.lessThan(2_048);

      await clamd.start();
      const pending = await waitUntilSettled(servers.stack, [...clean, ...infected], 180_000);
      expect(pending, 'files never settled').to.deep.equal([]);
    } finally {
      watching = false;
      await watcher;
    }

    // Every file accounted for, each with its verdict and one attempt.
    expect(clean).to.have.length(FILES - INFECTED);
    expect(infected).to.have.length(INFECTED);
    expect(await statusCounts(servers.stack)).to.deep.equal({ processed: FILES - INFECTED, failed: INFECTED });
    const rows = new Map((await rowsOf([...clean, ...infected])).map((row) => [row.id, row]));
    expect(rows.size).to.equal(FILES);
    for (const id of clean) {
      const row = rows.get(id)!;
      expect([row.status, row.attempts, row.scan_status, row.has_thumbnail], `clean file ${id}`).to.deep.equal([
        'processed',
        1,
        'clean',
        images.includes(id),
      ]);
    }
    for (const id of infected) {
      const row = rows.get(id)!;
      expect([row.status, row.attempts, row.error_code, row.scan_status], `infected file ${id}`).to.deep.equal([
        'failed',
        1,
        'malware_detected',
        'infected',
      ]);
    }

    // Nothing of an infected file ever served; a clean one served once scanned.
    expect(leaked, `infected bytes served (answers: ${JSON.stringify(answers)})`).to.equal(0);
    expect(answers[409], 'scan_pending answers for infected files').to.be.greaterThan(0);
    const refused = await expectProblem(await fetch(`${url}/files/${infected[0]}/content`), 403, 'file_infected');
    expect(refused.detail).to.contain(reportedName(EICAR_SIGNATURE));
    const served = await fetch(`${url}/files/${clean[0]}/content`);
    expect(served.status).to.equal(200);
    await served.arrayBuffer();

    // Each file scanned to a verdict exactly once: none processed twice.
    expect(await workerSeries('scans_total{verdict="clean"}')).to.equal(FILES - INFECTED);
    expect(await workerSeries('scans_total{verdict="infected"}')).to.equal(INFECTED);
    expect(await workerSeries('scanner_up')).to.equal(1);
    expect(await servers.stack.leftovers()).to.deep.equal({ orphanBlobs: 0, temporaryFiles: 0 });
  });

  it('waits, and scans the file once, when clamd is killed in the middle of its stream', async () => {
    const { url } = servers.stack;
    const cleanBefore = await workerSeries('scans_total{verdict="clean"}');
    const big = await bigBinaryFile(20);
    try {
      // Frozen, clamd takes the connection but reads nothing: 20 MiB cannot all fit in the sockets' buffers, so the
      // stream is surely under way when it dies.
      clamd.kill('SIGSTOP');
      const response = await uploadFromDisk(url, big);
      expect(response.status).to.equal(201);
      const file = (await response.json()) as File;
      const statusOf = async () => (await rowsOf([file.id]))[0]!;
      await waitFor(async () => (await statusOf()).status === 'processing', 'the scan under way');
      await sleep(1_000);
      clamd.kill('SIGKILL');
      await clamd.exited();

      await waitFor(async () => {
        const row = await statusOf();
        return row.status === 'queued' && row.attempts === 0;
      }, 'the attempt given back');
      await expectProblem(await fetch(`${url}/files/${file.id}/content`), 409, 'scan_pending');
      await clamd.start();

      expect(await waitUntilSettled(servers.stack, [file.id], 120_000)).to.deep.equal([]);
      const row = await statusOf();
      expect([row.status, row.attempts, row.scan_status]).to.deep.equal(['processed', 1, 'clean']);
      expect(await workerSeries('scans_total{verdict="clean"}')).to.equal(cleanBefore + 1);
      const served = await fetch(`${url}/files/${file.id}/content`);
      expect(served.status).to.equal(200);
      expect((await served.arrayBuffer()).byteLength).to.equal(20 * 1024 * 1024);
      expect(await servers.stack.leftovers()).to.deep.equal({ orphanBlobs: 0, temporaryFiles: 0 });
    } finally {
      rmSync(path.dirname(big), { recursive: true, force: true });
      if (!clamd.running) await clamd.start();
    }
  });
});
