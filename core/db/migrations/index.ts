// Every schema migration, oldest first; a new one is appended here. Plain SQL: each describes the
// schema as it was at that version, never the current model.
import type { MigrationParams } from 'umzug';
import { createFiles } from './0001-create-files.js';
import { createIdempotencyKeys } from './0002-idempotency-keys.js';
import { addThumbnail } from './0003-add-thumbnail.js';
import { createDirectUploads } from './0004-direct-uploads.js';
import { createWebhooks } from './0005-webhooks.js';
import { addFailedErrorCodeIndex } from './0006-failed-error-code.js';
import { addDirectUploadCompleted } from './0007-direct-upload-completed.js';
import { createWebhookEvents } from './0008-webhook-events.js';
import { addScan } from './0009-add-scan.js';
import { addPreview } from './0010-add-preview.js';

export type RunSql = (sql: string) => Promise<unknown>;

export interface Migration {
  name: string;
  up(params: MigrationParams<RunSql>): Promise<void>;
  down(params: MigrationParams<RunSql>): Promise<void>;
}

export const MIGRATIONS: Migration[] = [
  createFiles,
  createIdempotencyKeys,
  addThumbnail,
  createDirectUploads,
  createWebhooks,
  addFailedErrorCodeIndex,
  addDirectUploadCompleted,
  createWebhookEvents,
  addScan,
  addPreview,
];

/** Where umzug records applied migrations. */
export const MIGRATIONS_TABLE = 'schema_migrations';
