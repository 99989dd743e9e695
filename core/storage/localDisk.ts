// Blobs on a local (or shared, ReadWriteMany) file system:
//   <root>/blobs/<xx>/<id>[.<variant>]   where xx are the last two hex digits of the id
//   <root>/tmp/<id>.part                  while an upload streams in
//   <root>/tus/<id>, <id>.json            resumable uploads (localDiskResumable.ts)
// The shard comes from the random tail of the id: a UUIDv7 starts with a timestamp, so its first
// digits would put every file of the same weeks in one directory. The 256 shard directories are made
// once at start, so an upload never pays a mkdir; at 10^7 files a directory holds about 40,000 entries,
// which ext4 and XFS index well (beyond that, the object-store backend is the answer). Client names
// never reach a path.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import {
  BLOB_VARIANTS,
  type BlobIdPage,
  type BlobSource,
  type BlobStore,
  type BlobVariant,
  type ByteRange,
  type StoredBlob,
} from './index.js';
import { ResumableDiskUploads } from './localDiskResumable.js';
import type { ResumableStore } from '../tus/stores.js';
import { BlobMeter, pipeInto } from './meter.js';

const SAFE_KEY = /^[0-9a-z-]{8,64}$/i;
const SAFE_VARIANT = /^[a-z0-9]{1,16}$/;

const SHARDS = 256;
const shardName = (shard: number) => shard.toString(16).padStart(2, '0');
const CURSOR = /^[0-9a-f]{2}\/./;

export class LocalDiskStore implements BlobStore {
  readonly blobDir: string;
  readonly tmpDir: string;

  constructor(readonly root: string) {
    this.blobDir = path.join(root, 'blobs');
    this.tmpDir = path.join(root, 'tmp');
  }

  /** Creates the directories (all 256 shards); call once at start. */
  async init(): Promise<void> {
    await mkdir(this.tmpDir, { recursive: true });
    const shards = Array.from({ length: SHARDS }, (_, n) => path.join(this.blobDir, shardName(n)));
    await Promise.all(shards.map((shard) => mkdir(shard, { recursive: true })));
  }

  async put(id: string, source: Readable, options: { maxBytes: number; variant?: BlobVariant }): Promise<StoredBlob> {
    const target = this.pathOf(id, options.variant);
    const temporary = path.join(this.tmpDir, `${id}${options.variant ? `.${options.variant}` : ''}.part`);
    const meter = new BlobMeter(options.maxBytes);
    try {
      await pipeInto(source, meter, createWriteStream(temporary, { flags: 'wx' }));
      await rename(temporary, target);
    } catch (err) {
      await rm(temporary, { force: true });
      throw err;
    }
    return meter.blob();
  }

  async open(id: string, options: { range?: ByteRange; variant?: BlobVariant } = {}): Promise<Readable> {
    // Opening first turns a missing blob into a rejected promise rather than a stream error mid-response.
    const handle = await open(this.pathOf(id, options.variant), 'r');
    return handle.createReadStream(options.range ? { start: options.range.start, end: options.range.end } : {});
  }

  resumable(expireAfterMs: number): ResumableStore {
    return new ResumableDiskUploads(this, expireAfterMs);
  }

  source(id: string): Promise<BlobSource> {
    return Promise.resolve({ path: this.pathOf(id) });
  }

  async remove(id: string, options: { variant?: BlobVariant } = {}): Promise<void> {
    const variants = options.variant ? [options.variant] : [undefined, ...BLOB_VARIANTS];
    const paths = variants.map((variant) => this.pathOf(id, variant));
    await Promise.all(paths.map((blob) => unlink(blob).catch(ignoreMissing)));
  }

  async ping(): Promise<void> {
    const probe = path.join(this.tmpDir, `.ping-${process.pid}-${randomBytes(4).toString('hex')}`);
    const handle = await open(probe, 'wx');
    await handle.close();
    await unlink(probe);
  }

  async removeTemporaryBefore(before: Date): Promise<number> {
    let removed = 0;
    for (const name of await readdir(this.tmpDir)) {
      const file = path.join(this.tmpDir, name);
      const written = await stat(file).then(
        (info) => info.mtime,
        () => null,
      );
      if (written && written < before) {
        await rm(file, { force: true });
        removed++;
      }
    }
    return removed;
  }

  async listIds(cursor: string | null, maxKeys: number): Promise<BlobIdPage> {
    // The cursor is the last name listed, "<shard>/<name>": shards in order, names sorted within each.
    const from =
      cursor && CURSOR.test(cursor) ? { shard: parseInt(cursor.slice(0, 2), 16), name: cursor.slice(3) } : null;
    const ids = new Set<string>();
    let listed = 0;
    for (let shard = from?.shard ?? 0; shard < SHARDS; shard++) {
      const names = (await readdir(path.join(this.blobDir, shardName(shard))).catch(() => [] as string[])).sort();
      for (const name of names) {
        if (from && shard === from.shard && name <= from.name) continue;
        const id = name.split('.')[0]!;
        if (SAFE_KEY.test(id)) ids.add(id);
        if (++listed >= maxKeys) return { ids: [...ids], cursor: `${shardName(shard)}/${name}` };
      }
    }
    return { ids: [...ids], cursor: null };
  }

  async writtenAt(id: string): Promise<Date | null> {
    const paths = [this.pathOf(id), ...BLOB_VARIANTS.map((variant) => this.pathOf(id, variant))];
    const times = await Promise.all(
      paths.map((blob) =>
        stat(blob).then(
          (info) => info.mtime.getTime(),
          () => 0,
        ),
      ),
    );
    const latest = Math.max(...times);
    return latest ? new Date(latest) : null;
  }

  /** Where a blob lives; the id must look like an id (it never comes from a client unchecked). */
  pathOf(id: string, variant?: BlobVariant): string {
    if (!SAFE_KEY.test(id) || (variant !== undefined && !SAFE_VARIANT.test(variant))) {
      throw new Error(`Refusing unsafe blob key ${JSON.stringify(id)}/${JSON.stringify(variant)}.`);
    }
    return path.join(this.blobDir, id.slice(-2).toLowerCase(), variant ? `${id}.${variant}` : id);
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}
