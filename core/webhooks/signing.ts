// Standard Webhooks (https://www.standardwebhooks.com): each endpoint has a secret `whsec_<base64 of 24 random
// bytes>`; a message is signed as base64(HMAC-SHA256(secret bytes, "<webhook-id>.<webhook-timestamp>.<body>")) and
// sent as `webhook-signature: v1,<signature>`, so a receiver verifies it with any Standard Webhooks library.
import { createHmac, randomBytes } from 'node:crypto';

const SECRET_PREFIX = 'whsec_';
const SECRET_BYTES = 24;

/** A new endpoint's signing secret, shown to the client once. */
export const newSigningSecret = (): string => SECRET_PREFIX + randomBytes(SECRET_BYTES).toString('base64');

/** The headers that sign `body` as message `id` at `timestampSeconds`. */
export function signatureHeaders(
  secret: string,
  id: string,
  timestampSeconds: number,
  body: string,
): Record<'webhook-id' | 'webhook-timestamp' | 'webhook-signature', string> {
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64');
  const signature = createHmac('sha256', key).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': `v1,${signature}`,
  };
}
