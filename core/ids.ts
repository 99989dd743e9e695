import { randomUUID } from 'node:crypto';

/**
 * A UUIDv7 (RFC 9562), the id of every record (files, uploads, webhook endpoints): 48 bits of Unix milliseconds,
 * then random bits. Time-ordered ids keep the primary key index append-only. Built on randomUUID, whose batched entropy is several times
 * cheaper per id than filling a fresh buffer.
 */
export function newId(): string {
  const random = randomUUID();
  const time = Date.now().toString(16).padStart(12, '0');
  // randomUUID is `xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx`; keep its variant and random tail, set version 7.
  return `${time.slice(0, 8)}-${time.slice(8, 12)}-7${random.slice(15, 18)}-${random.slice(19)}`;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The id in canonical lower case, as ids are stored and their blobs named: UUIDs are case-insensitive on input
 * (RFC 9562). Null for anything that is not a UUID, which callers treat as an unknown id.
 */
export const parseId = (value: string): string | null => (UUID.test(value) ? value.toLowerCase() : null);
