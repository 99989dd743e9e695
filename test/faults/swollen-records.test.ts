// The largest records the service can hold cannot swell what the list answers: a real API process pages through
// 1,000 Files of the largest result a worker stores (and a few far larger, as rows written before results were
// bounded may be) within a few MiB a page, and its memory grows by less than 64 MiB, whatever `limit` asks.
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { rssBytesOf } from '../../core/procfs.js';
import { sql } from '../support/db.js';
import { freePort, killStartedProcesses, startProcess, waitUntilReady, type Started } from '../support/processes.js';

const MIB = 1024 * 1024;
const FILES = 1_000;
/** Rows of 3 MiB results, as a 3.5 KB PDF made before results were bounded (issue 25). */
const LEGACY = 10;

interface Page {
  results: Array<{ id: string; result: unknown }>;
  next: string | null;
}

describe('fault: a list of the largest records', function () {
  this.timeout(120_000);
  let api: Started;
  let url: string;
  const marker = randomBytes(6).toString('hex');

  before(async () => {
    await sql('TRUNCATE files');
    // A result at MAX_RESULT_BYTES (64 KiB): 100 names of 640 bytes; the name at its 255 bytes.
    await sql(
      `INSERT INTO files (id, name, size, content_type, kind, sha256, status, result, processed_at)
       SELECT gen_random_uuid(), $1 || lpad(n::text, 243, 'n'), 1, 'application/zip', 'archive', repeat('a', 64),
              'processed',
              jsonb_build_object('sha256_verified', true, 'bytes_read', 1, 'warnings', '[]'::jsonb, 'truncated', true,
                'names', (SELECT jsonb_agg(repeat('x', 640)) FROM generate_series(1, 100)),
                'text', repeat(CASE WHEN n <= $3 THEN 'T' ELSE 't' END, CASE WHEN n <= $3 THEN 3 * 1024 * 1024 ELSE 0 END)),
              now()
       FROM generate_series(1, $2) AS n`,
      [marker, FILES, LEGACY],
    );
    const [port, adminPort] = [await freePort(), await freePort()];
    api = startProcess('dist/api/main.js', { PORT: String(port), ADMIN_PORT: String(adminPort) });
    url = `http://127.0.0.1:${port}`;
    await waitUntilReady(api, `http://127.0.0.1:${adminPort}/readyz`);
  });

  after(async () => {
    api?.child.kill('SIGTERM');
    await api?.exited;
    killStartedProcesses();
    await sql('TRUNCATE files');
  });

  /** The largest RSS growth of the API while `work` runs, over its RSS before. */
  async function growthDuring<T>(work: () => Promise<T>): Promise<{ value: T; growth: number }> {
    const pid = api.child.pid!;
    const before = rssBytesOf(pid)!;
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssBytesOf(pid) ?? 0)), 5);
    try {
      const value = await work();
      return { value, growth: Math.max(peak, rssBytesOf(pid) ?? 0) - before };
    } finally {
      clearInterval(sampler);
    }
  }

  const page = async (address: string): Promise<{ page: Page; bytes: number }> => {
    const response = await fetch(address);
    expect(response.status).to.equal(200);
    const text = await response.text();
    return { page: JSON.parse(text) as Page, bytes: Buffer.byteLength(text) };
  };

  it('answers GET /files/?limit=1000 with a page of a few MiB, the API growing by less than 64 MiB', async () => {
    // Warm: the first request loads code and fills the pool.
    await page(`${url}/files/?limit=1`);
    const { value: first, growth } = await growthDuring(() => page(`${url}/files/?limit=1000`));
    // A page stops past 4 MiB of records; the row that crosses it may be a legacy one of 3 MiB.
    expect(first.bytes).to.be.below(8 * MIB);
    expect(first.page.next).to.be.a('string');
    expect(growth, `RSS grew by ${growth} bytes`).to.be.below(64 * MIB);
    process.stdout.write(
      `      (${first.page.results.length} Files, ${(first.bytes / MIB).toFixed(1)} MiB; API RSS +${(growth / MIB).toFixed(1)} MiB)\n`,
    );
  });

  it('answers every File exactly once, newest first, across the pages', async () => {
    const seen: string[] = [];
    let largest = 0;
    for (let next: string | null = `${url}/files/?limit=1000`; next;) {
      const { page: current, bytes } = await page(next);
      expect(current.results.length).to.be.at.least(1);
      largest = Math.max(largest, bytes);
      seen.push(...current.results.map((file) => file.id));
      next = current.next;
    }
    expect(new Set(seen).size).to.equal(FILES);
    expect(seen).to.have.length(FILES);
    const newestFirst = await sql<{ id: string }>('SELECT id FROM files ORDER BY uploaded_at DESC, id DESC');
    expect(seen).to.deep.equal(newestFirst.map((row) => row.id));
    expect(largest).to.be.below(8 * MIB);
  });
});
