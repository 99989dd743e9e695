// Jobs run beside each other, except a job that must run alone (a re-delivery whose last attempt died with
// its worker: it may be what kills workers). An alone job waits for the running ones to end and holds back
// the later ones until it ends. Turns are first come, first served, so neither kind starves; and nobody waits
// longer than `maxWaitMs`: past that, a job runs anyway, beside whatever runs, so that queue timeouts that
// started when the job was taken are never spent waiting here.

/** How a job runs: beside the others, or alone. */
export type RunMode = 'beside' | 'alone';

interface Turn {
  mode: RunMode;
  go(): void;
}

export class Exclusion {
  private beside = 0;
  private alone = false;
  private readonly waiting: Turn[] = [];

  constructor(private readonly maxWaitMs: number) {}

  async run<T>(mode: RunMode, work: () => Promise<T>): Promise<T> {
    const held = await this.take(mode);
    try {
      return await work();
    } finally {
      if (held === 'alone') this.alone = false;
      else this.beside--;
      this.admit();
    }
  }

  /** Jobs running, and jobs waiting for their turn. */
  get counts(): { beside: number; alone: number; waiting: number } {
    return { beside: this.beside, alone: this.alone ? 1 : 0, waiting: this.waiting.length };
  }

  /** Resolves with what the job holds once it may run: its turn, or, after `maxWaitMs`, a place beside the others. */
  private take(mode: RunMode): Promise<RunMode> {
    return new Promise((resolve) => {
      // eslint-disable-next-line prefer-const -- assigned after `turn`, whose go() clears it
      let timer: NodeJS.Timeout | undefined;
      const turn: Turn = {
        mode,
        go: () => {
          clearTimeout(timer);
          resolve(mode);
        },
      };
      this.waiting.push(turn);
      this.admit();
      if (!this.waiting.includes(turn)) return; // its turn came at once, as it does but for re-deliveries
      timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(turn), 1);
        this.beside++;
        resolve('beside');
        // It may have been holding back the ones behind it.
        this.admit();
      }, this.maxWaitMs);
    });
  }

  private admit(): void {
    while (this.waiting.length > 0 && !this.alone) {
      const next = this.waiting[0]!;
      if (next.mode === 'alone' && this.beside > 0) return;
      this.waiting.shift();
      if (next.mode === 'alone') this.alone = true;
      else this.beside++;
      next.go();
    }
  }
}
