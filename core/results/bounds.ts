// What a file makes us store and serve is bounded by us, not by the file: every string that came out of it is
// well-formed (no lone surrogate, no NUL: PostgreSQL's jsonb refuses both) and cut on a character boundary, every
// list is cut to a count, and the whole result to MAX_RESULT_BYTES, with `truncated` saying something was cut.
import { truncateUtf8 } from '../text.js';

export interface ResultBounds {
  /** The whole result, as JSON in UTF-8 (MAX_RESULT_BYTES). */
  maxBytes: number;
  /** One string, in UTF-8. */
  maxStringBytes: number;
  /** One list. */
  maxItems: number;
}

/** A title, a name, a codec, a warning: a kilobyte is far more than any honest one needs. */
export const MAX_RESULT_STRING_BYTES = 1024;
/** The lists of a result (names in an archive, codecs, columns) are their first entries, not all of them. */
export const MAX_RESULT_ITEMS = 100;
/** An error's message, for a person: a sentence, maybe with a library's reason in it. */
export const MAX_ERROR_MESSAGE_BYTES = 1024;

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };

/** The string as PostgreSQL can store it and a client can read it: lone surrogates and NUL become U+FFFD. */
export const storableString = (text: string): string => text.toWellFormed().replaceAll('\0', '\ufffd');

/** `text`, storable and cut to `maxBytes` of UTF-8 on a character boundary. */
export const boundString = (text: string, maxBytes: number): string => truncateUtf8(storableString(text), maxBytes);

const jsonBytes = (value: Json): number => Buffer.byteLength(JSON.stringify(value));

/**
 * `value` with every string cut to one code unit past MAX_RESULT_STRING_BYTES and every list to one item past
 * MAX_RESULT_ITEMS: what boundResult makes of it is the same, `truncated` included (it still sees every cut), but the
 * megabytes a file put in its fields can go. A parser process cuts its fields so before it runs a renderer, during which
 * it is busy and its RSS watched. Typed arrays (renderings) are left as they are.
 */
export function nearlyBounded<T>(value: T): T {
  const cut = (part: unknown): unknown => {
    if (typeof part === 'string')
      return part.length > MAX_RESULT_STRING_BYTES ? part.slice(0, MAX_RESULT_STRING_BYTES + 1) : part;
    if (Array.isArray(part)) return part.slice(0, MAX_RESULT_ITEMS + 1).map(cut);
    if (part && typeof part === 'object' && !ArrayBuffer.isView(part))
      return Object.fromEntries(Object.entries(part).map(([key, field]) => [key, cut(field)]));
    return part;
  };
  return cut(value) as T;
}

/**
 * The result within `bounds`, and `truncated` set (true when anything was cut, false otherwise). Numbers that JSON
 * cannot hold (NaN, Infinity) become null.
 */
export function boundResult(result: Record<string, unknown>, bounds: ResultBounds): Record<string, unknown> {
  let truncated = false;
  const bound = (value: unknown): Json => {
    if (typeof value === 'string') {
      const cut = boundString(value, bounds.maxStringBytes);
      if (cut.length < value.length) truncated = true;
      return cut;
    }
    if (typeof value === 'number') return Number.isFinite(value) ? value : null;
    if (typeof value === 'boolean' || value === null || value === undefined) return value ?? null;
    if (Array.isArray(value)) {
      if (value.length > bounds.maxItems) truncated = true;
      return value.slice(0, bounds.maxItems).map(bound);
    }
    if (typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value)
          .filter(([, field]) => field !== undefined)
          .map(([key, field]) => [key, bound(field)]),
      );
    }
    return null;
  };
  const bounded = bound(result) as { [key: string]: Json };
  // Reserve the flag's bytes ("false" is the longer), then cut the largest parts until the rest fits.
  bounded.truncated = false;
  if (shrinkToFit(bounded, bounds.maxBytes)) truncated = true;
  bounded.truncated = truncated;
  return bounded;
}

/**
 * Cuts `value` in place until its JSON fits in `maxBytes`: items off the end of its largest list first, then the
 * longest string to half; answers whether it cut anything. Ends: every step makes the JSON shorter.
 */
function shrinkToFit(value: { [key: string]: Json }, maxBytes: number): boolean {
  let cut = false;
  for (let excess = jsonBytes(value) - maxBytes; excess > 0; excess = jsonBytes(value) - maxBytes) {
    cut = true;
    const list = largest(value, (part): part is Json[] => Array.isArray(part) && part.length > 0);
    if (list) {
      // Items and their commas, from the end, until the excess is covered (one at least).
      let freed = 0;
      do freed += jsonBytes(list.pop()!) + 1;
      while (freed < excess && list.length > 0);
      continue;
    }
    const text = largestString(value);
    if (!text || text.value.length === 0) break;
    text.set(truncateUtf8(text.value, Math.floor(Buffer.byteLength(text.value) / 2)));
  }
  return cut;
}

/** The part of `value` (itself included) that `is`, with the longest JSON. */
function largest<T extends Json>(value: Json, is: (part: Json) => part is T): T | undefined {
  let best: T | undefined;
  let bestBytes = -1;
  const visit = (part: Json) => {
    if (is(part)) {
      const bytes = jsonBytes(part);
      if (bytes > bestBytes) [best, bestBytes] = [part, bytes];
    }
    if (Array.isArray(part)) part.forEach(visit);
    else if (part !== null && typeof part === 'object') Object.values(part).forEach(visit);
  };
  visit(value);
  return best;
}

/** The longest string in `value`, with a way to replace it where it is. */
function largestString(value: Json): { value: string; set: (text: string) => void } | undefined {
  let best: { value: string; set: (text: string) => void } | undefined;
  const visit = (parent: Json[] | { [key: string]: Json }) => {
    for (const [key, part] of Object.entries<Json>(parent)) {
      if (typeof part === 'string') {
        if (!best || part.length > best.value.length)
          best = { value: part, set: (text) => ((parent as Record<string, Json>)[key] = text) };
      } else if (part !== null && typeof part === 'object') visit(part);
    }
  };
  if (value !== null && typeof value === 'object') visit(value);
  return best;
}
