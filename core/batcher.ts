// Natural batching, as in a database's group commit: a call made while a batch is in flight waits
// for it and goes with the next one. A lone call goes at once and pays no wait; under load, N calls
// cost one round trip (and one commit) instead of N, and the batches grow with the load.

export interface BatcherOptions<I> {
  /** Most items in one batch. */
  max: number;
  /** Items with the same key never share a batch (e.g. two deliveries of one job): each sees the other's effect. */
  key?: (item: I) => string;
}

interface Call<I, O> {
  item: I;
  resolve(value: O): void;
  reject(err: unknown): void;
}

export class Batcher<I, O> {
  private pending: Array<Call<I, O>> = [];
  private inFlight = false;

  /** `run` answers each item, in order; when it fails for a batch, each item is tried alone, so one bad item fails only itself. */
  constructor(
    private readonly run: (items: I[]) => Promise<O[]>,
    private readonly options: BatcherOptions<I>,
  ) {}

  call(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.flush();
    });
  }

  private flush(): void {
    if (this.inFlight || this.pending.length === 0) return;
    const batch = this.take();
    this.inFlight = true;
    void this.settle(batch).finally(() => {
      this.inFlight = false;
      this.flush();
    });
  }

  /** Up to `max` pending calls, oldest first, at most one per key. */
  private take(): Array<Call<I, O>> {
    const keyOf = this.options.key;
    const keys = new Set<string>();
    const batch: Array<Call<I, O>> = [];
    const left: Array<Call<I, O>> = [];
    for (const call of this.pending) {
      const key = keyOf?.(call.item);
      if (batch.length >= this.options.max || (key !== undefined && keys.has(key))) {
        left.push(call);
        continue;
      }
      if (key !== undefined) keys.add(key);
      batch.push(call);
    }
    this.pending = left;
    return batch;
  }

  private async settle(batch: Array<Call<I, O>>): Promise<void> {
    try {
      const results = await this.run(batch.map((call) => call.item));
      batch.forEach((call, n) => call.resolve(results[n]!));
    } catch (err) {
      if (batch.length === 1) return batch[0]!.reject(err);
      await Promise.all(batch.map((call) => this.settle([call])));
    }
  }
}
