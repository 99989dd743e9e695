// The body of a parsing thread (see threads.ts): imports the module it is asked for, calls the named
// export and posts back its value or its error.
import { parentPort } from 'node:worker_threads';
import { ProcessingError } from './processors/types.js';
import type { ThreadReply, ThreadRequest } from './threads.js';

const port = parentPort!;

port.on('message', async ({ module, name, args }: ThreadRequest) => {
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
