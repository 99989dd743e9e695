// The blob store the in-process service and worker of this run use: the run's directory, or (with
// TEST_BLOB_STORE=s3, as `npm test` runs the HTTP contract suites a second time) one bucket of this run on
// the shared Ceph gateway. Tests reach blobs through the BlobStore interface, so they hold for both.
import { unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { DeleteObjectCommand } from '@aws-sdk/client-s3';
import { LocalDiskStore, S3BlobStore, type BlobStore, type BlobVariant } from '../../core/storage/index.js';
import { TEST_ENV } from './env.js';
import { s3StoreOn, sharedGateway } from './rgw.js';

export const testingS3 = (): boolean => process.env.TEST_BLOB_STORE === 's3';

let runBucket: Promise<S3BlobStore> | undefined;

/** The store of this run (the bucket created once). A run asked for S3 fails, not skips, without Ceph. */
export async function runStore(): Promise<BlobStore> {
  if (!testingS3()) {
    const store = new LocalDiskStore(TEST_ENV.storageDir);
    await store.init();
    return store;
  }
  runBucket ??= sharedGateway().then((gateway) => s3StoreOn(gateway));
  return runBucket;
}

/** Settings that point a service child process at the run's store. */
export async function runStoreEnv(): Promise<Record<string, string>> {
  if (!testingS3()) return { STORAGE_DIR: TEST_ENV.storageDir };
  const store = (await runStore()) as S3BlobStore;
  return (await sharedGateway()).env(store.bucket, store.settings.prefix);
}

/** Overwrites a blob's stored bytes, as a disk fault or a tampering would. */
export async function overwriteBlob(store: BlobStore, id: string, bytes: string, variant?: BlobVariant) {
  await store.put(id, Readable.from([Buffer.from(bytes)]), { maxBytes: 1024 * 1024, ...(variant ? { variant } : {}) });
}

/** Whether the store holds the blob (or its variant). */
export async function hasBlob(store: BlobStore, id: string, variant?: BlobVariant): Promise<boolean> {
  try {
    (await store.open(id, variant ? { variant } : {})).destroy();
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** Removes only the variant (the original stays), as a lost derived file. */
export async function removeVariant(store: BlobStore, id: string, variant: BlobVariant): Promise<void> {
  if (store instanceof LocalDiskStore) return unlink(store.pathOf(id, variant));
  const s3 = store as S3BlobStore;
  await s3.client.send(new DeleteObjectCommand({ Bucket: s3.bucket, Key: s3.keyOf(id, variant) }));
}
