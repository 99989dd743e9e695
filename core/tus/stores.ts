// What a blob store keeps resumable (tus) uploads with: each BlobStore makes its own (`BlobStore.resumable`, in a
// module beside the store's), with the tus DataStore that suits it, so code outside a store never asks which store
// it has. Unfinished uploads live in the store's own place, shared by every API pod, so any pod continues any
// upload. A finished upload is adopted: its bytes become the File's blob without passing through the API, and its
// leftovers go once the File is recorded. Every implementation passes test/resumable-stores.test.ts.
import type { Readable } from 'node:stream';
import type { DataStore } from '@tus/utils';

export interface ResumableStore {
  /** The tus DataStore of these uploads, for @tus/server; its upload ids are `uploadIdOf`'s. */
  readonly datastore: DataStore;
  /** The datastore's id of the upload that becomes File `fileId`. */
  uploadIdOf(fileId: string): string;
  /** The File id of a datastore id (the reverse of uploadIdOf). */
  fileIdOf(uploadId: string): string;
  /** The finished upload's bytes, from the start. Rejects with code ENOENT once there is no such upload. */
  read(fileId: string): Promise<Readable>;
  /**
   * Makes the finished upload the blob of `fileId`, its bytes never through this process. The upload stays as it
   * was (finished, readable) until `discard`, so a completion that fails after this step can run again. True once
   * it is adopted (now or by an earlier completion), false when there was nothing to adopt.
   */
  adopt(fileId: string): Promise<boolean>;
  /** Removes what is left of the upload (after adoption, or on expiry); a missing upload is not an error. */
  discard(fileId: string): Promise<void>;
  /**
   * Removes the uploads created before `before`, finished or not (a finished one still here never became a File,
   * and its client was told so), and what an interrupted creation or removal left; answers how many uploads.
   */
  removeExpired(before: Date): Promise<number>;
}
