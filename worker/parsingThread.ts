// The body of a parsing thread (see threads.ts): imports the parsers it is given, says it is ready, then
// for each request imports the module it names, calls the named export and posts back its value or error.
import { parentPort, workerData } from 'node:worker_threads';
import { ProcessingError } from './processors/types.js';
import type { ThreadData, ThreadReply, ThreadRequest } from './threads.js';

const port = parentPort!;
const { preload } = workerData as ThreadData;
// A module that fails to load fails the requests that need it, not the thread.
const preloaded = Promise.allSettled(preload.map((module) => import(module))).then(() => port.postMessage({ ready: true } satisfies ThreadReply));

port.on('message', async ({ module, name, args }: ThreadRequest) => {
  await preloaded;
  let reply: ThreadReply;
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
  port.postMessage(reply);
});
