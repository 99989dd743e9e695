import { expect } from 'chai';
import { Exclusion, type RunMode } from '../worker/exclusion.js';
import { rejection } from './support/eventually.js';

/** A job that records when it starts and runs until the test lets it end. */
function gatedJob(exclusion: Exclusion, mode: RunMode, name: string, log: string[]) {
  let end!: () => void;
  const gate = new Promise<void>((resolve) => (end = resolve));
  const done = exclusion.run(mode, async () => {
    log.push(name);
    await gate;
  });
  return { end, done };
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

/** Lets a gated job end, and gives the ones it held back their turn. */
async function finish(job: { end(): void; done: Promise<void> }): Promise<void> {
  job.end();
  await job.done;
  await turn();
}

describe('running re-deliveries alone (Exclusion)', () => {
  it('runs jobs beside each other at once', async () => {
    const exclusion = new Exclusion(60_000);
    const log: string[] = [];
    const jobs = ['a', 'b', 'c'].map((name) => gatedJob(exclusion, 'beside', name, log));
    await turn();
    expect(log).to.deep.equal(['a', 'b', 'c']);
    expect(exclusion.counts).to.deep.equal({ beside: 3, alone: 0, waiting: 0 });
    jobs.forEach((job) => job.end());
    await Promise.all(jobs.map((job) => job.done));
    expect(exclusion.counts).to.deep.equal({ beside: 0, alone: 0, waiting: 0 });
  });

  it('starts an alone job once the running ones ended, and holds back the later ones until it ends', async () => {
    const exclusion = new Exclusion(60_000);
    const log: string[] = [];
    const first = gatedJob(exclusion, 'beside', 'first', log);
    const alone = gatedJob(exclusion, 'alone', 'alone', log);
    const later = gatedJob(exclusion, 'beside', 'later', log);
    await turn();
    expect(log).to.deep.equal(['first']);
    await finish(first);
    expect(log).to.deep.equal(['first', 'alone']);
    expect(exclusion.counts).to.deep.equal({ beside: 0, alone: 1, waiting: 1 });
    await finish(alone);
    expect(log).to.deep.equal(['first', 'alone', 'later']);
    await finish(later);
  });

  it('runs two alone jobs one after the other', async () => {
    const exclusion = new Exclusion(60_000);
    const log: string[] = [];
    const one = gatedJob(exclusion, 'alone', 'one', log);
    const two = gatedJob(exclusion, 'alone', 'two', log);
    await turn();
    expect(log).to.deep.equal(['one']);
    await finish(one);
    expect(log).to.deep.equal(['one', 'two']);
    await finish(two);
  });

  it('lets a job that waited too long run anyway, beside the others, and frees its turn for the ones behind it', async () => {
    const exclusion = new Exclusion(50);
    const log: string[] = [];
    const busy = gatedJob(exclusion, 'beside', 'busy', log);
    const alone = gatedJob(exclusion, 'alone', 'alone', log);
    const later = gatedJob(exclusion, 'beside', 'later', log);
    await turn();
    expect(log).to.deep.equal(['busy']);
    // The alone job gives up waiting after 50 ms and runs beside "busy"; "later" was behind it and goes too.
    await new Promise((resolve) => setTimeout(resolve, 120));
    expect(log).to.deep.equal(['busy', 'alone', 'later']);
    expect(exclusion.counts).to.deep.equal({ beside: 3, alone: 0, waiting: 0 });
    [busy, alone, later].forEach((job) => job.end());
    await Promise.all([busy, alone, later].map((job) => job.done));
    expect(exclusion.counts).to.deep.equal({ beside: 0, alone: 0, waiting: 0 });
  });

  it('frees the turn when a job throws', async () => {
    const exclusion = new Exclusion(60_000);
    const err = await rejection(exclusion.run('alone', () => Promise.reject(new Error('parser died'))));
    expect(err.message).to.equal('parser died');
    expect(exclusion.counts).to.deep.equal({ beside: 0, alone: 0, waiting: 0 });
    expect(await exclusion.run('beside', async () => 'next')).to.equal('next');
  });
});
