// Resumable (tus) uploads of the local (or shared) directory: @tus/file-store in `<root>/tus/`, each upload its
// bytes `<id>` and `<id>.json` beside them; the upload id is the File id. A finished upload is adopted by a hard
// link into the blob's place: as fast as a rename whatever the size, and the upload stays whole until it is
// discarded, so a completion that fails after adopting (the database away) runs again from the same bytes.
import { constants } from 'node:fs';
import { copyFile, link, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { FileStore } from '@tus/file-store';
import type { ResumableStore } from '../tus/stores.js';
import type { LocalDiskStore } from './localDisk.js';

const SAFE_ID = /^[0-9a-z-]{8,64}$/i;

/** A file system that makes no hard link here (SMB shares, some FUSE mounts): the bytes are copied instead. */
const NO_HARD_LINK = ['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'EXDEV', 'EMLINK', 'ENOSYS'];

export class ResumableDiskUploads implements ResumableStore {
  readonly datastore: FileStore;
  private readonly directory: string;

  constructor(
    private readonly storage: LocalDiskStore,
    expireAfterMs: number,
  ) {
    this.directory = path.join(storage.root, 'tus');
    this.datastore = new FileStore({ directory: this.directory, expirationPeriodInMilliseconds: expireAfterMs });
  }

  uploadIdOf = (fileId: string): string => fileId;
  fileIdOf = (uploadId: string): string => uploadId;

  async read(fileId: string): Promise<Readable> {
    // Opening first turns a missing upload into a rejection rather than a stream error.
    const handle = await open(this.pathOf(fileId), 'r');
    return handle.createReadStream();
  }

  async adopt(fileId: string): Promise<boolean> {
    const blob = this.storage.pathOf(fileId);
    try {
      await link(this.pathOf(fileId), blob);
      return true;
    } catch (err) {
      const { code } = err as NodeJS.ErrnoException;
      // Adopted by an earlier completion (that failed afterwards, or was discarded since).
      if (code === 'EEXIST') return true;
      if (code === 'ENOENT') return (await this.storage.writtenAt(fileId)) !== null;
      if (!NO_HARD_LINK.includes(code ?? '')) throw err;
    }
    // A copy lands under a temporary name first: a blob is whole or absent.
    const temporary = path.join(this.storage.tmpDir, `${fileId}.adopted.part`);
    try {
      await copyFile(this.pathOf(fileId), temporary, constants.COPYFILE_FICLONE);
      await rename(temporary, blob);
    } catch (err) {
      await rm(temporary, { force: true });
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return (await this.storage.writtenAt(fileId)) !== null;
      throw err;
    }
    return true;
  }

  async discard(fileId: string): Promise<void> {
    // The bytes first: metadata alone reads as gone (410) to FileStore, bytes alone would be listed by no one.
    await rm(this.pathOf(fileId), { force: true });
    await rm(`${this.pathOf(fileId)}.json`, { force: true });
  }

  /**
   * Our own sweep rather than FileStore's deleteExpired, which stops at the first upload whose metadata has no
   * bytes (its remove throws) and never sees bytes without metadata.
   */
  async removeExpired(before: Date): Promise<number> {
    const names = await readdir(this.directory).catch(() => [] as string[]);
    const ids = new Set(names.map((name) => name.replace(/\.json$/, '')).filter((id) => SAFE_ID.test(id)));
    let removed = 0;
    for (const id of ids) {
      const created = await this.createdAt(id);
      if (created && created < before) {
        await this.discard(id);
        removed++;
      }
    }
    return removed;
  }

  /** When the upload was created, as its metadata says; without metadata, when its bytes were last written. */
  private async createdAt(id: string): Promise<Date | null> {
    const metadata = `${this.pathOf(id)}.json`;
    const info = await readFile(metadata, 'utf8')
      .then((text) => JSON.parse(text) as { creation_date?: unknown })
      .catch(() => null);
    const created = typeof info?.creation_date === 'string' ? new Date(info.creation_date) : null;
    if (created && !Number.isNaN(created.getTime())) return created;
    const written = await stat(this.pathOf(id))
      .catch(() => stat(metadata))
      .catch(() => null);
    return written?.mtime ?? null;
  }

  private pathOf(fileId: string): string {
    if (!SAFE_ID.test(fileId)) throw new Error(`Refusing unsafe upload id ${JSON.stringify(fileId)}.`);
    return path.join(this.directory, fileId);
  }
}
