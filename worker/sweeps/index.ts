// The reconciler's sweeps, run by its leader in this order, each at its own interval. A new sweep is one module
// here and one line below.
import { directUploads } from './directUploads.js';
import { idempotencyKeys } from './idempotencyKeys.js';
import { orphanBlobs } from './orphanBlobs.js';
import { requeueLost } from './requeueLost.js';
import { requeueQueued } from './requeueQueued.js';
import { resumableUploads } from './resumableUploads.js';
import type { Sweep, SweepDeps, SweepFactory } from './sweep.js';
import { temporaryFiles } from './temporaryFiles.js';
import { webhookRetention } from './webhookRetention.js';

export { ORPHAN_KEYS_PER_RUN } from './orphanBlobs.js';
export type { Sweep, SweepConfig, SweepCounts, SweepDeps, SweepFactory } from './sweep.js';

export const SWEEPS: readonly SweepFactory[] = [
  requeueQueued,
  requeueLost,
  orphanBlobs,
  temporaryFiles,
  idempotencyKeys,
  directUploads,
  webhookRetention,
  resumableUploads,
];

/** The sweeps of this process: those of SWEEPS that have something to sweep here. */
export const sweepsFor = (deps: SweepDeps): Sweep[] => SWEEPS.flatMap((sweep) => sweep(deps) ?? []);
