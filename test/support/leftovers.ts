// What a failed request may not leave behind: rows, blobs, temporary files (unfinished multipart uploads).
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3BlobStore } from '../../core/storage/index.js';
import { sql } from './db.js';
import { TEST_ENV } from './env.js';
import { runStore, testingS3 } from './stores.js';

/** Every file under a blob directory (blobs and temporary files), or in the run's bucket when testing S3. */
export async function storedFiles(root?: string): Promise<string[]> {
  if (root === undefined && testingS3()) return bucketContents((await runStore()) as S3BlobStore);
  const found: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else found.push(full);
    }
  };
  await walk(root ?? TEST_ENV.storageDir);
  return found.sort();
}

/** Every object and unfinished multipart upload in the store's bucket. */
export async function bucketContents(store: S3BlobStore): Promise<string[]> {
  const found: string[] = [];
  let token: string | undefined;
  do {
    const page = await store.client.send(new ListObjectsV2Command({ Bucket: store.bucket, ContinuationToken: token }));
    found.push(...(page.Contents ?? []).map((object) => object.Key!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  const uploads = await store.client.send(new ListMultipartUploadsCommand({ Bucket: store.bucket }));
  found.push(...(uploads.Uploads ?? []).map((upload) => `unfinished upload of ${upload.Key}`));
  return found.sort();
}

export const rowCount = async (): Promise<number> =>
  Number((await sql<{ count: string }>('SELECT count(*) FROM files'))[0]!.count);

/** A snapshot of rows and stored files; `unchanged()` tells whether anything was added since. */
export async function snapshot(root?: string): Promise<{ unchanged(): Promise<{ rows: number; files: string[] }> }> {
  const rows = await rowCount();
  const files = new Set(await storedFiles(root));
  return {
    async unchanged() {
      return { rows: (await rowCount()) - rows, files: (await storedFiles(root)).filter((file) => !files.has(file)) };
    },
  };
}
