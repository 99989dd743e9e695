import { expect } from 'chai';
import { Batcher } from '../core/batcher.js';
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
