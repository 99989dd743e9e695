import { expect } from 'chai';
import { Batcher } from '../core/batcher.js';
import { openDatabase, type Database } from '../core/db/index.js';
import type { NewFile } from '../core/fileRecord.js';
import { newId } from '../core/ids.js';
import { sql } from './support/db.js';
import { TEST_ENV } from './support/env.js';
import { rejection } from './support/eventually.js';

/** A batcher that doubles numbers, recording each batch it ran; `fail` makes a batch holding it throw. */
function doubler(options: { max?: number; key?: (n: number) => string; fail?: number } = {}) {
  const batches: number[][] = [];
  const batcher = new Batcher<number, number>(
    async (items) => {
      batches.push(items);
      await new Promise((resolve) => setTimeout(resolve, 5));
      if (options.fail !== undefined && items.includes(options.fail)) throw new Error(`cannot take ${options.fail}`);
      return items.map((n) => n * 2);
    },
    { max: options.max ?? 10, ...(options.key && { key: options.key }) },
  );
  return { batcher, batches };
}

describe('natural batching', () => {
  it('sends a lone call at once, and the calls made meanwhile together in the next batch', async () => {
    const { batcher, batches } = doubler();
    const first = batcher.call(1);
    expect(batches).to.deep.equal([[1]]);
    const rest = [2, 3, 4].map((n) => batcher.call(n));
    expect(await Promise.all([first, ...rest])).to.deep.equal([2, 4, 6, 8]);
    expect(batches).to.deep.equal([[1], [2, 3, 4]]);
  });

  it('keeps batches at their maximum size', async () => {
    const { batcher, batches } = doubler({ max: 2 });
    await Promise.all([1, 2, 3, 4, 5].map((n) => batcher.call(n)));
    expect(batches).to.deep.equal([[1], [2, 3], [4, 5]]);
  });

  it('never puts two calls with the same key in one batch, keeping their order', async () => {
    const { batcher, batches } = doubler({ key: (n) => String(n % 10) });
    await Promise.all([1, 2, 12, 3, 22].map((n) => batcher.call(n)));
    expect(batches).to.deep.equal([[1], [2, 3], [12], [22]]);
  });

  it('fails only the call that breaks its batch: the others are tried alone and succeed', async () => {
    const { batcher, batches } = doubler({ fail: 3 });
    const calls = [1, 2, 3, 4].map((n) =>
      batcher.call(n).then(
        (value) => value,
        (err: Error) => err.message,
      ),
    );
    expect(await Promise.all(calls)).to.deep.equal([2, 4, 'cannot take 3', 8]);
    expect(batches.slice(0, 2)).to.deep.equal([[1], [2, 3, 4]]);
    expect(batches.slice(2).sort()).to.deep.equal([[2], [3], [4]]);
  });

  it('rejects a lone failing call with the error of its batch', async () => {
    const { batcher } = doubler({ fail: 7 });
    expect((await rejection(batcher.call(7))).message).to.equal('cannot take 7');
    expect(await batcher.call(8)).to.equal(16);
  });
});

describe('FileRepository.insert, batched', () => {
  let db: Database;
  before(() => {
    db = openDatabase({ url: TEST_ENV.databaseUrl, poolMax: 4 });
  });
  after(() => db.close());

  const newFile = (change: Partial<NewFile> = {}): NewFile => ({
    id: newId(),
    name: 'a.txt',
    size: 1,
    content_type: 'text/plain',
    kind: 'text',
    sha256: 'a'.repeat(64),
    ...change,
  });
  /** The transaction that inserted each row: rows of one statement share it. */
  const insertedBy = async (ids: string[]): Promise<Map<string, string>> => {
    const rows = await sql<{ id: string; xmin: string }>(
      'SELECT id, xmin::text FROM files WHERE id = ANY($1::uuid[])',
      [ids],
    );
    return new Map(rows.map((row) => [row.id, row.xmin]));
  };

  it('inserts a lone upload at once, and the uploads that come meanwhile together in one statement', async () => {
    const files = Array.from({ length: 6 }, (_, n) => newFile({ name: `f${n}.txt`, size: n + 1 }));
    const rows = await Promise.all(files.map((file) => db.files.insert(file)));
    expect(rows.map((row) => [row.id, row.name, row.size, row.status])).to.deep.equal(
      files.map((file) => [file.id, file.name, file.size, 'queued']),
    );
    const transactions = await insertedBy(files.map((file) => file.id));
    const [first, ...rest] = files.map((file) => transactions.get(file.id));
    expect(new Set(rest).size).to.equal(1);
    expect(rest[0]).to.not.equal(first);
  });

  it('inserts each upload alone with an insertBatchMax of 1 (DATABASE_INSERT_BATCH_MAX=1)', async () => {
    const single = openDatabase({ url: TEST_ENV.databaseUrl, poolMax: 4, insertBatchMax: 1 });
    try {
      const files = Array.from({ length: 4 }, () => newFile());
      await Promise.all(files.map((file) => single.files.insert(file)));
      const transactions = await insertedBy(files.map((file) => file.id));
      expect(new Set(transactions.values()).size).to.equal(4);
    } finally {
      await single.close();
    }
  });

  it('fails only the row that breaks its batch: the others of the batch are inserted', async () => {
    const taken = await db.files.insert(newFile());
    const lone = db.files.insert(newFile());
    const good = [newFile(), newFile(), newFile()];
    const [negative, duplicate] = [newFile({ size: -1 }), newFile({ id: taken.id })];
    const calls = [good[0]!, negative, good[1]!, duplicate, good[2]!].map((file) =>
      db.files.insert(file).then(
        (row) => row.id,
        (err: Error & { code?: string }) => err.code,
      ),
    );
    await lone;
    // 23514: the size check; 23505: the primary key.
    expect(await Promise.all(calls)).to.deep.equal([good[0]!.id, '23514', good[1]!.id, '23505', good[2]!.id]);
    const stored = await sql<{ id: string }>('SELECT id FROM files WHERE id = ANY($1::uuid[])', [
      [...good, negative].map((file) => file.id),
    ]);
    expect(stored.map((row) => row.id).sort()).to.deep.equal(good.map((file) => file.id).sort());
  });

  it('completes the idempotency key of each row that has one, in the statement that inserts it', async () => {
    const keys = ['k1', 'k2'].map((key) => ({ scope: `batch-${newId()}`, key }));
    for (const scope of keys) expect(await db.idempotencyKeys.claim(scope, 60_000)).to.deep.equal({ state: 'claimed' });
    const files = [newFile(), newFile({ sha256: 'b'.repeat(64) }), newFile(), newFile({ sha256: 'c'.repeat(64) })];
    await Promise.all([
      db.files.insert(files[0]!),
      db.files.insert(files[1]!, keys[0]),
      db.files.insert(files[2]!),
      db.files.insert(files[3]!, keys[1]),
    ]);
    const transactions = await insertedBy(files.map((file) => file.id));
    expect(transactions.get(files[1]!.id)).to.equal(transactions.get(files[3]!.id));
    expect(await db.idempotencyKeys.claim(keys[0]!, 60_000)).to.deep.equal({
      state: 'done',
      fileId: files[1]!.id,
      sha256: 'b'.repeat(64),
    });
    expect(await db.idempotencyKeys.claim(keys[1]!, 60_000)).to.deep.equal({
      state: 'done',
      fileId: files[3]!.id,
      sha256: 'c'.repeat(64),
    });
  });
});
