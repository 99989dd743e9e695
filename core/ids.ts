import { v7 } from 'uuid';

/** Time-ordered (UUIDv7) ids keep the primary key index append-only. */
export const newFileId = (): string => v7();

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** True for a canonical lower-case UUID; anything else is treated as an unknown id. */
export const isFileId = (value: string): boolean => UUID.test(value);
