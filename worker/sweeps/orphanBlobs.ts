// Blobs with neither a File nor a remembered direct upload, last written more than ORPHAN_AFTER_MS ago (younger ones
// may belong to an upload between its bytes and its INSERT). A cursor over the store's keys: each run lists
// ORPHAN_KEYS_PER_RUN keys from where the last one stopped, and starts over after the last key, so a round over the
// whole store takes ceil(keys / ORPHAN_KEYS_PER_RUN) runs.
import { BATCH, everyTick, type SweepFactory } from './sweep.js';

/** Keys listed a run (ten ListObjectsV2 pages in a bucket): a store this size is swept whole every run. */
export const ORPHAN_KEYS_PER_RUN = 10_000;

export const orphanBlobs: SweepFactory = ({ db, storage, config, orphanKeysPerRun = ORPHAN_KEYS_PER_RUN }) => {
  /** The last key the previous run listed; null to start from the first. */
  let cursor: string | null = null;
  return {
    name: 'orphan_blobs',
    // Every tick, because each run covers a slice: the interval sets how long a round over a large store takes.
    intervalMs: everyTick(config),
    async run() {
      const orphanBefore = new Date(Date.now() - config.orphanAfterMs);
      const page = await storage.listIds(cursor, orphanKeysPerRun);
      cursor = page.cursor;
      let removed = 0;
      for (let start = 0; start < page.ids.length; start += BATCH) {
        const batch = page.ids.slice(start, start + BATCH);
        const known = await db.files.existing(batch);
        // An upload's object is its own until it is forgotten: bytes before their File, or a deleted File's placeholder.
        const uploads = storage.direct ? await db.uploads.remembered(batch) : new Set<string>();
        for (const id of batch.filter((candidate) => !known.has(candidate) && !uploads.has(candidate))) {
          const written = await storage.writtenAt(id);
          if (written && written < orphanBefore) {
            await storage.remove(id);
            removed++;
          }
        }
      }
      return { removed };
    },
  };
};
