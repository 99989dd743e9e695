// Temporary files of uploads that never finished (an API pod died mid-upload; in a bucket, multipart uploads that
// could not be aborted), once older than ORPHAN_AFTER_MS.
import { housekeeping, type SweepFactory } from './sweep.js';

export const temporaryFiles: SweepFactory = ({ storage, config }) => ({
  name: 'temporary_files',
  intervalMs: housekeeping(config),
  async run() {
    return { removed: await storage.removeTemporaryBefore(new Date(Date.now() - config.orphanAfterMs)) };
  },
});
