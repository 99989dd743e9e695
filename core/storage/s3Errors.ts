// How the S3 SDK's errors read to the rest of the service: a missing object is ENOENT, as on disk; what the store
// may get over by itself (no answer, a 5xx, SlowDown) is StorageUnavailableError; anything else (a 403 for a
// wrong key, a missing bucket) stays as it is: a setting to fix, not an outage to wait out.
import { StorageUnavailableError } from './index.js';

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
}

const NETWORK_ERRORS = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH'];

/** The HTTP status the store answered, if it answered. */
export const statusOf = (err: unknown): number | undefined => (err as SdkError | null)?.$metadata?.httpStatusCode;

/** A missing object as the ENOENT every BlobStore caller expects; undefined for any other error. */
export function missing(err: unknown): Error | undefined {
  const { name } = err as SdkError;
  if (name !== 'NoSuchKey' && name !== 'NotFound' && statusOf(err) !== 404) return undefined;
  return Object.assign(new Error('No such blob.', { cause: err }), { code: 'ENOENT' });
}

/** True when the store did not answer, or answered that it cannot now. */
export function isTransient(err: unknown): boolean {
  if (err instanceof StorageUnavailableError) return true;
  const { name, code } = err as SdkError;
  const status = statusOf(err);
  return (
    (status !== undefined && status >= 500) ||
    ['SlowDown', 'RequestTimeout', 'TimeoutError'].includes(name ?? '') ||
    NETWORK_ERRORS.includes(code ?? '')
  );
}

/** A transient error as StorageUnavailableError, saying what the store was doing; any other as it is. */
export function unavailable(err: unknown, doing: string): unknown {
  if (!isTransient(err) || err instanceof StorageUnavailableError) return err;
  return new StorageUnavailableError(`The object store did not answer while ${doing} (${describe(err)}).`, {
    cause: err,
  });
}

function describe(err: unknown): string {
  const { name, code, message } = err as SdkError;
  return code ?? (name && name !== 'Error' ? name : (message ?? String(err)));
}
