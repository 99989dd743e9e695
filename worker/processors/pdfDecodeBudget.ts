// pdf.js inflates a PDF's streams itself, in JavaScript, and its API sets no bound on how much: a 1 MB page
// can decode to gigabytes. Its worker code (which runs in-process in Node, as a "fake worker") is loaded from a
// copy made at build time with its two decoding paths patched to charge every decoded byte to the budget of the
// document being read.
// A source patch because there is no other hook: pdf.js exports none of its stream classes, and its options
// bound image sizes only.
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

/** The bytes one document may decode; the patched pdf.js throws once they are spent. */
export class DecodeBudget {
  decoded = 0;
  exceeded = false;
  constructor(readonly limit: number) {}

  charge(bytes: number): void {
    if (!this.exceeded && this.decoded + bytes <= this.limit) {
      this.decoded += bytes;
      return;
    }
    this.exceeded = true;
    throw new DecodeBudgetExceeded(this.limit);
  }
}

/** Thrown inside pdf.js; pdf.js may swallow it (it skips what it cannot decode), so DecodeBudget.exceeded is what tells. */
class DecodeBudgetExceeded extends Error {
  override name = 'DecodeBudgetExceeded';
  constructor(limit: number) {
    super(`The PDF decodes to more than ${limit} bytes.`);
  }
}

// pdf.js runs its worker code on promise callbacks of the calling document, so the budget follows the async context.
const budgets = new AsyncLocalStorage<DecodeBudget>();

/** Called by the patched pdf.js for every decoded byte it is about to hold (outside a budget, nothing is counted). */
export function chargeDecodedBytes(bytes: number): void {
  if (bytes > 0) budgets.getStore()?.charge(bytes);
}

/** Runs `read` (which opens and reads one document) with `budget` charged for whatever pdf.js decodes for it. */
export function withDecodeBudget<T>(budget: DecodeBudget, read: () => Promise<T>): Promise<T> {
  return budgets.run(budget, read);
}

interface Patch {
  /** Where in pdf.worker.mjs: the text must occur exactly once. */
  find: string;
  /** What is inserted right after it. */
  insert: string;
}

const CHARGE = '__chargeDecodedBytes';

const PATCHES: Patch[] = [
  {
    // DecodeStream grows its buffer before each block it decodes (Flate, LZW, predictors, decryption...):
    // charge the room it is about to take beyond what it was charged already.
    find: [
      '  ensureBuffer(requested) {',
      '    const buffer = this.buffer;',
      '    if (requested <= buffer.byteLength) {',
      '      return buffer;',
      '    }',
      '    let size = this.minBufferLength;',
      '    while (size < requested) {',
      '      size *= 2;',
      '    }',
      '',
    ].join('\n'),
    insert: `    ${CHARGE}(size - (this.__charged ?? 0));\n    this.__charged = size;\n`,
  },
  {
    // Flate and Brotli streams read whole (content streams, fonts) go through a native DecompressionStream.
    find: '        totalLength += chunk.byteLength;\n',
    insert: `        ${CHARGE}(chunk.byteLength);\n`,
  },
];

/** The source of pdf.js's worker code with the patches applied; throws when a patch no longer finds its place. */
export function patchPdfjsWorker(source: string): string {
  let patched = source;
  for (const { find, insert } of PATCHES) {
    const at = patched.indexOf(find);
    if (at < 0 || patched.indexOf(find, at + 1) >= 0) {
      throw new Error(
        `pdfjs-dist changed: the decode budget's patch point ${JSON.stringify(find.split('\n')[0])} was found ${at < 0 ? 'nowhere' : 'more than once'} ` +
          'in pdf.worker.mjs; update PATCHES in worker/processors/pdfDecodeBudget.ts.',
      );
    }
    patched = patched.slice(0, at + find.length) + insert + patched.slice(at + find.length);
  }
  // Its source map sits beside the original, not beside the patched copy.
  patched = patched.replace(/^\/\/# sourceMappingURL=.*$/gm, '');
  return `import { chargeDecodedBytes as ${CHARGE} } from './pdfDecodeBudget.js';\n${patched}`;
}

export const PDFJS_WORKER_FILE = fileURLToPath(import.meta.resolve('pdfjs-dist/legacy/build/pdf.worker.mjs'));

/**
 * The patched worker code, written beside this module by `npm run build` (scripts/pdfjs-worker.ts): imported from
 * a file, it costs a parser process 18 MiB; from a data: URL made at run time, 43 MiB that V8 kept.
 */
const BUDGETED_PDFJS_WORKER = new URL('./pdf.worker.budgeted.mjs', import.meta.url);

/** Writes the patched worker code to BUDGETED_PDFJS_WORKER; throws when pdfjs-dist changed under the patches. */
export async function writeBudgetedPdfjsWorker(): Promise<void> {
  await writeFile(BUDGETED_PDFJS_WORKER, patchPdfjsWorker(await readFile(PDFJS_WORKER_FILE, 'utf8')));
}

let loaded: Promise<unknown> | undefined;

/**
 * Imports the patched worker code once and makes it the one pdf.js uses, through `globalThis.pdfjsWorker`:
 * call before the first getDocument of the process.
 */
export function loadBudgetedPdfjsWorker(): Promise<unknown> {
  loaded ??= (async () => {
    const worker = (await import(BUDGETED_PDFJS_WORKER.href)) as { WorkerMessageHandler: unknown };
    (globalThis as { pdfjsWorker?: unknown }).pdfjsWorker = { WorkerMessageHandler: worker.WorkerMessageHandler };
    return worker.WorkerMessageHandler;
  })();
  return loaded;
}
