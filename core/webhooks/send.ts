// One attempt at one delivery: a signed POST, cut at the timeout (headers and body alike), redirects not
// followed, at most RESPONSE_CAP bytes of the answer read (a receiver cannot make us hold its page), and the
// connection made only to an address the SSRF guard allows (addresses.ts).
import http from 'node:http';
import https from 'node:https';
import { assertSendable, guardedLookup, WebhookUrlError } from './addresses.js';

/** Of a receiver's answer, this much is read, and the start of it kept in `last_error`. */
const RESPONSE_CAP = 4 * 1024;
const ERROR_EXCERPT = 200;

export interface SendOptions {
  timeoutMs: number;
  allowPrivate: boolean;
  userAgent: string;
}

export type SendResult =
  { ok: true; status: number } | { ok: false; status: number | null; error: string; gone: boolean; forbidden: boolean };

// Kept-alive connections per process: a busy endpoint gets its events over a few warm sockets. A kept socket was
// checked when it connected; a new one is checked again.
const AGENTS = {
  'http:': new http.Agent({ keepAlive: true, keepAliveMsecs: 5_000, maxFreeSockets: 64, timeout: 30_000 }),
  'https:': new https.Agent({ keepAlive: true, keepAliveMsecs: 5_000, maxFreeSockets: 64, timeout: 30_000 }),
};

export async function sendWebhook(
  url: URL,
  headers: Record<string, string>,
  body: string,
  options: SendOptions,
): Promise<SendResult> {
  try {
    if (!options.allowPrivate) assertSendable(url);
    const { status, excerpt, location } = await post(url, headers, body, options);
    if (status >= 200 && status < 300) return { ok: true, status };
    const said = excerpt ? `: ${excerpt}` : '';
    const error =
      status >= 300 && status < 400
        ? `The receiver answered ${status}, a redirect${location ? ` to ${location}` : ''}; redirects are not followed.`
        : `The receiver answered ${status}${said}`;
    return { ok: false, status, error, gone: status === 410, forbidden: false };
  } catch (err) {
    const forbidden = err instanceof WebhookUrlError || (err as NodeJS.ErrnoException).code === 'EFORBIDDEN';
    return { ok: false, status: null, error: describe(err), gone: false, forbidden };
  }
}

function post(
  url: URL,
  headers: Record<string, string>,
  body: string,
  options: SendOptions,
): Promise<{ status: number; excerpt: string; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(body);
    const request = (url.protocol === 'https:' ? https : http).request(url, {
      method: 'POST',
      agent: AGENTS[url.protocol === 'https:' ? 'https:' : 'http:'],
      headers: {
        ...headers,
        'content-type': 'application/json',
        'content-length': String(payload.length),
        'user-agent': options.userAgent,
      },
      ...(options.allowPrivate ? {} : { lookup: guardedLookup }),
    });
    const timer = setTimeout(
      () => request.destroy(new TimeoutError(`The receiver did not answer within ${options.timeoutMs / 1000} s.`)),
      options.timeoutMs,
    );
    request.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    request.on('response', (response) => {
      const kept: Buffer[] = [];
      let length = 0;
      const done = () => {
        clearTimeout(timer);
        const location = response.headers.location;
        const excerpt = Buffer.concat(kept).toString('utf8').replace(/\s+/g, ' ').trim().slice(0, ERROR_EXCERPT);
        resolve({ status: response.statusCode ?? 0, excerpt, location });
      };
      response.on('data', (chunk: Buffer) => {
        length += chunk.length;
        if (length <= RESPONSE_CAP) kept.push(chunk);
        else {
          // Enough: the answer's status is known, the rest is not ours to hold.
          response.destroy();
          done();
        }
      });
      response.on('end', done);
      response.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
    });
    request.end(payload);
  });
}

class TimeoutError extends Error {
  override name = 'TimeoutError';
}

function describe(err: unknown): string {
  if (err instanceof TimeoutError || err instanceof WebhookUrlError) return err.message;
  const { code, message } = err as NodeJS.ErrnoException;
  return `The request failed (${code ?? message}).`;
}
