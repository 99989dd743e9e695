// Resumable (tus) uploads left unfinished past TUS_EXPIRE_AFTER_MS, with their bytes.
import { housekeeping, type SweepFactory } from './sweep.js';

export const resumableUploads: SweepFactory = ({ resumable, config }) =>
  resumable
    ? {
        name: 'resumable_uploads',
        intervalMs: housekeeping(config),
        async run() {
          return { removed: await resumable.removeExpired(new Date(Date.now() - config.tusExpireAfterMs)) };
        },
      }
    : null;
