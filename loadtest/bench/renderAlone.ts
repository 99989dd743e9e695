// The renderer alone, for the renderings bench (rendering.ts): `node renderAlone.js <kind> <file>...` renders each
// file one after another as the worker does (the same tool with the same arguments, then the worker's own
// renderWebP for both WebPs), in a bare process: no queue, database, parser process or limits. For an image, sharp's
// metadata too, as the worker reads it before it renders.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { renderWebP } from '../../worker/renderers/webp.js';

const [kind, ...files] = process.argv.slice(2);
const PREVIEW = '1024';
const MAX_PIXELS = 268_402_689;

/** The PNG the kind's tool draws of `file` in `dir`, with the worker's arguments (worker/renderers/). */
function drawn(file: string, dir: string): string {
  if (kind === 'pdf') {
    const out = path.join(dir, 'page');
    execFileSync('pdftoppm', ['-f', '1', '-l', '1', '-scale-to', PREVIEW, '-png', '-singlefile', file, out]);
    return `${out}.png`;
  }
  const png = path.join(dir, 'poster.png');
  execFileSync('ffmpeg', [
    ...['-nostdin', '-v', 'error', '-protocol_whitelist', 'file', '-threads', '1', '-filter_threads', '1'],
    ...['-ss', '1.000', '-i', `file:${file}`, '-frames:v', '1'],
    ...['-vf', `scale='min(${PREVIEW},iw)':'min(${PREVIEW},ih)':force_original_aspect_ratio=decrease`],
    ...['-y', png],
  ]);
  return png;
}

// As the worker's parser processes set it (worker/processors/image.ts): one decode at a time, no cache.
sharp.cache(false);
sharp.concurrency(1);

const dir = mkdtempSync(path.join(os.tmpdir(), 'render-alone-'));
try {
  for (const file of files) {
    if (kind === 'image') {
      await sharp(file).metadata();
      await renderWebP(file, { maxPixels: MAX_PIXELS, strict: true });
    } else {
      await renderWebP(drawn(file, dir), { maxPixels: MAX_PIXELS });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
