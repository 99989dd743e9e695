// `node dist/scripts/smoke.js`: uploads a small text file to the API at API_URL, waits until a worker has
// processed it, then deletes it; exits 0 when all of that worked, 1 with one sentence otherwise.
// The chart's `helm test` pod and the image test run it against a deployed API.
import { readFileSync } from 'node:fs';

const apiUrl = (process.env.API_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');
const timeoutMs = Number(process.env.SMOKE_TIMEOUT_MS ?? '60000');

/** The first of the API's own tokens (API_TOKENS_FILE or API_TOKENS, comma or line separated), if any. */
function bearerToken(): string | undefined {
  const tokens = process.env.API_TOKENS_FILE
    ? readFileSync(process.env.API_TOKENS_FILE, 'utf8')
    : (process.env.API_TOKENS ?? '');
  return tokens.split(/[\s,]+/).find(Boolean);
}

async function smoke(): Promise<string> {
  const token = bearerToken();
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  const form = new FormData();
  form.append(
    'file',
    new Blob([`file-processor smoke test ${new Date().toISOString()}\n`], { type: 'text/plain' }),
    'smoke-test.txt',
  );
  const uploaded = await fetch(`${apiUrl}/upload/`, { method: 'POST', body: form, headers });
  if (uploaded.status !== 201)
    throw new Error(`POST ${apiUrl}/upload/ answered ${uploaded.status}: ${await uploaded.text()}`);
  const { id } = (await uploaded.json()) as { id: string };

  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const file = (await (await fetch(`${apiUrl}/files/${id}/`, { headers })).json()) as {
      status: string;
      error: unknown;
    };
    if (file.status === 'processed') break;
    if (file.status === 'failed') throw new Error(`file ${id} failed: ${JSON.stringify(file.error)}`);
    if (Date.now() > deadline)
      throw new Error(
        `file ${id} is still ${file.status} after ${timeoutMs} ms: is a worker running on the same queue?`,
      );
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  // A smoke test leaves nothing behind in a real installation.
  await fetch(`${apiUrl}/files/${id}/`, { method: 'DELETE', headers });
  return id;
}

smoke().then(
  (id) => process.stdout.write(`uploaded, processed and deleted file ${id} through ${apiUrl}\n`),
  (err: unknown) => {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message;
    process.stderr.write(`smoke test failed: ${(err as Error).message}${why ? ` (${why})` : ''}\n`);
    process.exit(1);
  },
);
