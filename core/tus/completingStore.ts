// The DataStore @tus/server is given: a resumable store's own (ResumableStore.datastore), to which it hands every
// call, with one thing more. An upload it is asked about (by HEAD, PATCH or DELETE, under the upload's lock) that
// is finished but not yet a File is completed there and then, so a completion cut part-way (the database away, a
// pod killed) is finished by the next request that looks at the upload; and once the upload's leftovers are gone,
// its File answers for it. A wrapper rather than a patched getUpload: the library's store stays as it is, and any
// store's DataStore is completed alike.
import type { Readable } from 'node:stream';
import { DataStore, Upload } from '@tus/utils';

/** What a finished upload became. */
export interface CompletedUpload {
  /** The File's size, the upload's whole length. */
  size: number;
  /** The File's name. */
  name: string;
}

export interface Completion {
  /** Makes the finished upload its File; safe to run again, after a failure part-way or once it is done. */
  complete(upload: Upload): Promise<CompletedUpload>;
  /** The File the upload became (or is becoming in this process), or null when it became none. */
  completed(uploadId: string): Promise<CompletedUpload | null>;
}

export class CompletingDataStore extends DataStore {
  constructor(
    private readonly store: DataStore,
    private readonly completion: Completion,
  ) {
    super();
    this.extensions = store.extensions;
  }

  override async getUpload(id: string): Promise<Upload> {
    let upload: Upload;
    try {
      upload = await this.store.getUpload(id);
    } catch (err) {
      // No such upload (404), or one part-way through its removal (410, metadata without bytes): its File, if any.
      const { status_code } = err as { status_code?: number };
      if (status_code !== 404 && status_code !== 410) throw err;
      const done = await this.completion.completed(id);
      if (!done) throw err;
      return new Upload({ id, size: done.size, offset: done.size, metadata: { filename: done.name } });
    }
    if (upload.size === undefined || upload.offset !== upload.size) return upload;
    const done = await this.completion.complete(upload);
    // Created now as far as tus can tell: a File does not expire with the upload it was.
    return new Upload({ id, size: done.size, offset: done.size, metadata: upload.metadata });
  }

  override create(upload: Upload): Promise<Upload> {
    return this.store.create(upload);
  }

  override write(stream: Readable, id: string, offset: number): Promise<number> {
    return this.store.write(stream, id, offset);
  }

  override declareUploadLength(id: string, length: number): Promise<void> {
    return this.store.declareUploadLength(id, length);
  }

  override remove(id: string): Promise<void> {
    return this.store.remove(id);
  }

  override deleteExpired(): Promise<number> {
    return this.store.deleteExpired();
  }

  override getExpiration(): number {
    return this.store.getExpiration();
  }
}
