// The body of a parser process (see parsers.ts): offers itself to the kernel's OOM killer first, imports the
// parsers it is given (and what they prepare), says it is ready, then for each request imports the module it
// names, calls the named export and sends back its value or error. It dies with its worker, even while a parser
// spins.
import { writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { ProcessingError } from './processors/types.js';
import { PRELOAD_ENV, type ParserReply, type ParserRequest } from './parsers.js';

// The highest score: when memory runs out, the kernel takes a parser, never the worker or the API.
try {
  writeFileSync('/proc/self/oom_score_adj', '1000');
} catch {
  // Not Linux: the RSS watch of the parent is the only limit.
}

// A parser spinning in a loop never hears its IPC channel close: a thread watching the parent's pid does.
const parentPid = process.ppid;
new Worker(`setInterval(() => { if (process.ppid !== ${parentPid}) process.kill(process.pid, 'SIGKILL'); }, 500);`, {
  eval: true,
}).unref();
process.on('disconnect', () => process.exit(0));

const send = (reply: ParserReply) => process.send!(reply);
/** What the child held once ready; past it by GARBAGE_BYTES after a file, it collects before it answers. */
let readyRss = Infinity;
const GARBAGE_BYTES = 16 * 1024 * 1024;
const preload = JSON.parse(process.env[PRELOAD_ENV] ?? '[]') as string[];
/** A parser module may export this: what it loads lazily (so that the worker never does) is loaded here, before any file. */
const PREPARE_EXPORT = 'prepareParser';

// A module that fails to load fails the requests that need it, not the child.
const preloaded = Promise.allSettled(
  preload.map(async (module) => {
    const prepare = ((await import(module)) as Record<string, unknown>)[PREPARE_EXPORT];
    if (typeof prepare === 'function') await (prepare as () => Promise<void>)();
  }),
).then(() => {
  readyRss = process.memoryUsage.rss();
  send({ ready: true });
});

async function answer({ module, name, args }: ParserRequest): Promise<void> {
  await preloaded;
  let reply: ParserReply;
  try {
    const analysis = ((await import(module)) as Record<string, unknown>)[name];
    if (typeof analysis !== 'function') throw new Error(`${module} exports no function ${name}.`);
    reply = { ok: true, value: await (analysis as (...args: unknown[]) => Promise<unknown>)(...args) };
  } catch (err) {
    const error = err as Error & { code?: unknown };
    reply = {
      ok: false,
      error: {
        permanent: err instanceof ProcessingError,
        code: typeof error.code === 'string' ? error.code : null,
        message: String(error?.message ?? err),
      },
    };
  }
  collectGarbage();
  send(reply);
}

/**
 * The worker replaces a child that still holds a quarter of its headroom after a file (worker/parsers.ts): what it
 * reads then should be what the child holds, not the garbage of the file it just read, which V8, with an old space
 * sized far above the RSS ceiling, would keep for a while. `gc` is exposed to parser processes (v8Flags).
 */
function collectGarbage(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc && process.memoryUsage.rss() > readyRss + GARBAGE_BYTES) gc();
}

process.on('message', (request: ParserRequest) => void answer(request));
