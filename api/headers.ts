// Headers every response carries, problems included: errors.ts keeps them when it clears what the success
// path had set.

/** The API serves JSON and downloads, never pages to frame or scripts to run (/docs sets its own policy). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  'Referrer-Policy': 'no-referrer',
  'X-Frame-Options': 'DENY',
  'Content-Security-Policy': "default-src 'none'; frame-ancestors 'none'",
};

/** Lower-case names of the headers a problem response keeps from before the error. */
export const KEPT_ON_ERROR: ReadonlySet<string> = new Set([
  'x-request-id',
  'vary',
  ...Object.keys(SECURITY_HEADERS).map((name) => name.toLowerCase()),
]);
