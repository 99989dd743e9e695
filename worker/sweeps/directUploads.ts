// Direct uploads are remembered until their presigned PUT is dead (expired, plus the bucket's clock skew); then they
// are forgotten, and the object at their key goes unless a File owns it: an upload never completed, or the
// placeholder left by the DELETE of its File. A removal that fails leaves an orphan, which orphan_blobs takes.
import { catchUpStatements, housekeeping, removeInBatches, REMOVE_BATCH, type SweepFactory } from './sweep.js';

export const directUploads: SweepFactory = ({ db, storage, config }) =>
  storage.direct
    ? {
        name: 'direct_uploads',
        intervalMs: housekeeping(config),
        run: () =>
          removeInBatches(
            async (limit) => {
              const { forgotten, unowned } = await db.uploads.forgetExpired(limit);
              for (const id of unowned) await storage.remove(id);
              return { forgotten, removed: unowned.length };
            },
            REMOVE_BATCH,
            catchUpStatements(config),
          ),
      }
    : null;
