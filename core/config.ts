// Every setting comes from the environment, is parsed once at start into a typed object,
// and a bad value stops the process with one sentence naming the variable and the fix.
import path from 'node:path';
import {
  parseQueueRoutes,
  parseWorkerQueues,
  RouteError,
  type ConsumedQueue,
  type QueueRoutes,
} from './queue/routes.js';

export type Role = 'api' | 'worker' | 'migrate';

export interface Config {
  role: Role;
  host: string;
  port: number;
  adminPort: number;
  publicUrl: string | null;
  trustProxy: boolean;
  databaseUrl: string;
  databasePoolMax: number;
  databaseInsertBatchMax: number;
  redisUrl: string;
  queuePrefix: string;
  queueName: string;
  /** Which queue each kind goes to (QUEUE_ROUTES); by default every kind to `queueName`. */
  queueRoutes: QueueRoutes;
  /** The queues a worker takes jobs from, each with its concurrency (WORKER_QUEUES). */
  workerQueues: ConsumedQueue[];
  blobStore: 'disk' | 's3';
  storageDir: string;
  s3Bucket: string | null;
  s3Prefix: string;
  s3Endpoint: string | null;
  s3Region: string;
  s3ForcePathStyle: boolean;
  downloadRedirect: boolean;
  directUploadExpiresMs: number;
  maxUploadBytes: number;
  workerConcurrency: number;
  jobRetries: number;
  jobBackoffMs: number;
  shutdownTimeoutMs: number;
  logLevel: string;
  apiTokens: string[];
  apiTokensFile: string | null;
  corsOrigins: string[];
  maxBacklog: number;
  rateLimitPerSecond: number;
  rateLimitBurst: number;
  httpHeadersTimeoutMs: number;
  httpRequestTimeoutMs: number;
  httpIdleTimeoutMs: number;
  httpMinBytesPerSecond: number;
  httpMinRateWindowMs: number;
  httpKeepAliveTimeoutMs: number;
  httpMaxHeaderBytes: number;
  maxAttempts: number;
  queueStallIntervalMs: number;
  reconcileIntervalMs: number;
  requeueAfterMs: number;
  orphanAfterMs: number;
  livenessMaxEventLoopDelayMs: number;
  jobTimeoutMs: number;
  imageMaxPixels: number;
  parserMaxRssBytes: number;
  pdfMaxDecodedBytes: number;
  maxResultBytes: number;
  /** clamd's address (`tcp://host:port` or a unix socket path); null when scanning is off. */
  scanClamd: string | null;
  scanUnscannable: 'fail' | 'allow';
  scanTimeoutMs: number;
  podDeletionCost: boolean;
  podName: string | null;
  podNamespace: string | null;
  maxWaiters: number;
  tusExpireAfterMs: number;
  tusLockTtlMs: number;
  webhookAllowHttp: boolean;
  webhookAllowPrivate: boolean;
  webhookTimeoutMs: number;
  webhookMaxAttempts: number;
  webhookRetryBaseMs: number;
  webhookDisableAfterMs: number;
  webhookConcurrency: number;
  webhookEndpointConcurrency: number;
  webhookRetentionMs: number;
  maxWebhookEndpoints: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Parse<T> = (raw: string, name: string) => T;

export interface Setting {
  /** Environment variable. */
  env: string;
  /** Default as a person would type it; a function when it depends on the process role. */
  fallback: string | ((role: Role) => string);
  description: string;
  key: keyof Config;
  parse: Parse<Config[keyof Config]>;
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export const integer =
  (min: number, max: number): Parse<number> =>
  (raw, name) => {
    const value = Number(raw);
    if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
      throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${raw}".`);
    }
    return value;
  };

const port: Parse<number> = integer(1, 65535);

const bytes: Parse<number> = (raw, name) => {
  const match = /^(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(raw.trim());
  const units: Record<string, number> = {
    b: 1,
    k: 1024,
    kb: 1024,
    kib: 1024,
    m: 1024 ** 2,
    mb: 1024 ** 2,
    mib: 1024 ** 2,
    g: 1024 ** 3,
    gb: 1024 ** 3,
    gib: 1024 ** 3,
  };
  const value = match ? Number(match[1]) * (units[(match[2] ?? 'b').toLowerCase()] ?? 1) : NaN;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(`${name} must be a positive size in bytes such as 104857600 or 100MiB, got "${raw}".`);
  }
  return value;
};

/** A size from `min` to `max` bytes, where a smaller or larger one would break what the setting bounds. */
const bytesWithin =
  (min: number, max: number): Parse<number> =>
  (raw, name) => {
    const value = bytes(raw, name);
    if (value < min || value > max) {
      throw new ConfigError(`${name} must be a size from ${min} to ${max} bytes (such as 64KiB), got "${raw}".`);
    }
    return value;
  };

const boolean: Parse<boolean> = (raw, name) => {
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}".`);
};

const url =
  (protocols: string[], example: string): Parse<string> =>
  (raw, name) => {
    let parsed: URL;
    try {
      parsed = new URL(raw);
    } catch {
      throw new ConfigError(`${name} must be a URL such as ${example}, got "${raw}".`);
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new ConfigError(
        `${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}, such as ${example}; got "${raw}".`,
      );
    }
    return raw;
  };

const optionalUrl: Parse<string | null> = (raw, name) =>
  raw === '' ? null : url(['http:', 'https:'], 'https://files.example.com')(raw, name).replace(/\/+$/, '');

const name: Parse<string> = (raw, envName) => {
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(raw)) {
    throw new ConfigError(`${envName} must be 1 to 64 letters, digits, ".", "_" or "-", got "${raw}".`);
  }
  return raw;
};

const optionalDnsName: Parse<string | null> = (raw, envName) => {
  if (raw === '') return null;
  if (!/^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?$/.test(raw)) {
    throw new ConfigError(
      `${envName} must be a Kubernetes name (lowercase letters, digits, "-" and "."), got "${raw}".`,
    );
  }
  return raw;
};

const text: Parse<string> = (raw, envName) => {
  if (raw.trim() === '') throw new ConfigError(`${envName} must not be empty.`);
  return raw;
};

const MIN_TOKEN_LENGTH = 16;

/** Bearer tokens, comma- or newline-separated; never echoed in an error. */
export const tokens: Parse<string[]> = (raw, envName) => {
  const list = raw.split(/[\s,]+/).filter(Boolean);
  if (list.some((token) => token.length < MIN_TOKEN_LENGTH || !/^[\x21-\x7e]+$/.test(token))) {
    throw new ConfigError(
      `${envName} must list tokens of at least ${MIN_TOKEN_LENGTH} visible ASCII characters, separated by commas or new lines.`,
    );
  }
  return list;
};

const optionalPath: Parse<string | null> = (raw) => (raw.trim() === '' ? null : path.resolve(raw));

/** clamd's address: `tcp://host:port`, or the absolute path of its unix socket; empty is off. */
const optionalClamdAddress: Parse<string | null> = (raw, envName) => {
  if (raw.trim() === '') return null;
  if (raw.startsWith('/')) return raw;
  const tcp = /^tcp:\/\/([^/:\s]+|\[[0-9a-f:.]+\]):(\d{1,5})$/i.exec(raw);
  if (tcp && Number(tcp[2]) >= 1 && Number(tcp[2]) <= 65535) return raw;
  throw new ConfigError(
    `${envName} must be tcp://host:port (such as tcp://clamd:3310) or the absolute path of clamd's socket, got "${raw}".`,
  );
};

const origins: Parse<string[]> = (raw, envName) => {
  const list = raw.split(/[\s,]+/).filter(Boolean);
  for (const origin of list) {
    if (origin === '*') continue;
    let parsed: URL | undefined;
    try {
      parsed = new URL(origin);
    } catch {
      parsed = undefined;
    }
    if (!parsed || parsed.origin !== origin) {
      throw new ConfigError(
        `${envName} must list origins such as https://app.example.com (scheme, host and port only) or *, got "${origin}".`,
      );
    }
  }
  return list;
};

// S3's bucket naming rules (3 to 63 lowercase letters, digits, "." and "-", starting and ending alphanumeric).
const bucketName: Parse<string | null> = (raw, envName) => {
  if (raw === '') return null;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(raw)) {
    throw new ConfigError(
      `${envName} must be a bucket name (3 to 63 lowercase letters, digits, "." and "-"), got "${raw}".`,
    );
  }
  return raw;
};

const keyPrefix: Parse<string> = (raw, envName) => {
  if (raw === '') return '';
  if (!/^[A-Za-z0-9!_.*'()/-]{1,512}$/.test(raw) || raw.startsWith('/') || raw.includes('//')) {
    throw new ConfigError(
      `${envName} must be a key prefix of letters, digits and !_.*'()-, with "/" between parts (such as files/), got "${raw}".`,
    );
  }
  return raw.endsWith('/') ? raw : `${raw}/`;
};

export const oneOf =
  (choices: string[]): Parse<string> =>
  (raw, envName) => {
    if (!choices.includes(raw)) throw new ConfigError(`${envName} must be one of ${choices.join(', ')}, got "${raw}".`);
    return raw;
  };

/** The settings table: README.md documents exactly these (a test keeps them in step). */
export const SETTINGS: Setting[] = [
  {
    env: 'HOST',
    key: 'host',
    fallback: '0.0.0.0',
    parse: text,
    description: 'Interface the API and admin servers listen on.',
  },
  { env: 'PORT', key: 'port', fallback: '8080', parse: port, description: 'API port.' },
  {
    env: 'ADMIN_PORT',
    key: 'adminPort',
    fallback: (role) => (role === 'worker' ? '9091' : '9090'),
    parse: port,
    description: 'Admin port (`/healthz`, `/readyz`, `/metrics`): 9090 for the API, 9091 for the worker.',
  },
  {
    env: 'PUBLIC_URL',
    key: 'publicUrl',
    fallback: '',
    parse: optionalUrl,
    description: "Base of the absolute URLs in responses (`file`, `next`); empty means the request's own origin.",
  },
  {
    env: 'TRUST_PROXY',
    key: 'trustProxy',
    fallback: 'false',
    parse: boolean,
    description: 'Honour `X-Forwarded-Proto`/`-Host`/`-For` from the ingress.',
  },
  {
    env: 'DATABASE_URL',
    key: 'databaseUrl',
    fallback: 'postgres://postgres@127.0.0.1:5432/file_processor',
    parse: url(['postgres:', 'postgresql:'], 'postgres://user:password@host:5432/file_processor'),
    description: 'PostgreSQL connection URL; `npm run migrate` creates the database when it is missing.',
  },
  {
    env: 'DATABASE_POOL_MAX',
    key: 'databasePoolMax',
    fallback: '10',
    parse: integer(1, 500),
    description: 'Connections per process.',
  },
  {
    env: 'DATABASE_INSERT_BATCH_MAX',
    key: 'databaseInsertBatchMax',
    fallback: '32',
    parse: integer(1, 1_000),
    description:
      "Most new Files one INSERT carries: the uploads whose row is ready while the previous INSERT is in flight share the next one (a lone upload goes at once). 1 inserts each alone, at about twice PostgreSQL's CPU per upload.",
  },
  {
    env: 'REDIS_URL',
    key: 'redisUrl',
    fallback: 'redis://127.0.0.1:6379',
    parse: url(['redis:', 'rediss:'], 'redis://host:6379/0'),
    description: 'Redis connection URL for the queue.',
  },
  {
    env: 'QUEUE_PREFIX',
    key: 'queuePrefix',
    fallback: 'bq',
    parse: name,
    description: "Prefix of the queue's Redis keys (`<prefix>:<name>:waiting`, ...).",
  },
  {
    env: 'QUEUE_NAME',
    key: 'queueName',
    fallback: 'files',
    parse: name,
    description: 'Queue name: the one queue of every kind while `QUEUE_ROUTES` is empty.',
  },
  {
    env: 'QUEUE_ROUTES',
    key: 'queueRoutes',
    fallback: '',
    // Read as text here; loadConfig resolves it once QUEUE_NAME is known.
    parse: (raw) => raw,
    description:
      'Worker pools: which queue each kind of file goes to, as `;`-separated rules `kinds=queue`, `*` standing for every kind no rule names, e.g. `image,pdf,video,audio=heavy;*=light`. Every kind must end in exactly one queue. Empty: every kind in `QUEUE_NAME`. The API and every worker must have the same value.',
  },
  {
    env: 'WORKER_QUEUES',
    key: 'workerQueues',
    fallback: '',
    parse: (raw) => raw,
    description:
      'The queues a worker takes jobs from, as `queue=concurrency` separated by commas (e.g. `heavy=2`; a concurrency left out is `WORKER_CONCURRENCY`). Empty: every queue of `QUEUE_ROUTES`, each with `WORKER_CONCURRENCY`. A queue no kind is routed to any more may be named, to drain it.',
  },
  {
    env: 'BLOB_STORE',
    key: 'blobStore',
    fallback: 'disk',
    parse: oneOf(['disk', 's3']),
    description:
      "Where the bytes live: `disk` (the directory `STORAGE_DIR`, shared by the API and the workers) or `s3` (an S3-compatible bucket, `S3_*`; credentials from the AWS SDK's default chain: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`, or the pod's identity).",
  },
  {
    env: 'STORAGE_DIR',
    key: 'storageDir',
    fallback: './data',
    parse: (raw, envName) => path.resolve(text(raw, envName)),
    description: 'Directory of the blob store, shared by the API and the workers (`BLOB_STORE=disk`).',
  },
  {
    env: 'S3_BUCKET',
    key: 's3Bucket',
    fallback: '',
    parse: bucketName,
    description: 'The bucket (`BLOB_STORE=s3`, required there); it must exist.',
  },
  {
    env: 'S3_PREFIX',
    key: 's3Prefix',
    fallback: '',
    parse: keyPrefix,
    description: 'Prepended to every object key, so the service can share a bucket (a `/` is added if missing).',
  },
  {
    env: 'S3_ENDPOINT',
    key: 's3Endpoint',
    fallback: '',
    parse: optionalUrl,
    description: 'The S3 endpoint of a store that is not AWS (Ceph RGW, MinIO, R2, GCS); empty for AWS.',
  },
  {
    env: 'S3_REGION',
    key: 's3Region',
    fallback: 'us-east-1',
    parse: name,
    description: "The bucket's region (any value for most S3-compatible stores).",
  },
  {
    env: 'S3_FORCE_PATH_STYLE',
    key: 's3ForcePathStyle',
    fallback: 'false',
    parse: boolean,
    description:
      'Address the bucket as `<endpoint>/<bucket>` instead of `<bucket>.<endpoint>` (MinIO and Ceph RGW usually need it).',
  },
  {
    env: 'DOWNLOAD_REDIRECT',
    key: 'downloadRedirect',
    fallback: 'false',
    parse: boolean,
    description:
      '`GET /files/{id}/content` answers `302` to a presigned GET of the object (valid 5 minutes, with the same `Content-Disposition` and `Content-Type`) instead of streaming it through the API (`BLOB_STORE=s3`).',
  },
  {
    env: 'DIRECT_UPLOAD_EXPIRES_MS',
    key: 'directUploadExpiresMs',
    fallback: '3600000',
    parse: integer(60_000, 7 * 24 * 3_600_000),
    description:
      'How long a direct upload (`POST /uploads/`, `BLOB_STORE=s3`) may take from announcement to `complete`: its presigned PUT expires then, and the reconciler removes what was left (at most 7 days, the longest a presigned URL lives).',
  },
  {
    env: 'MAX_UPLOAD_BYTES',
    key: 'maxUploadBytes',
    fallback: '100MiB',
    parse: bytes,
    description: 'Largest accepted file (bytes, or with a unit: `KiB`, `MiB`, `GiB`).',
  },
  {
    env: 'WORKER_CONCURRENCY',
    key: 'workerConcurrency',
    fallback: '4',
    parse: integer(1, 256),
    description: 'Jobs one worker process runs at once, per queue it takes jobs from (see `WORKER_QUEUES`).',
  },
  {
    env: 'JOB_RETRIES',
    key: 'jobRetries',
    fallback: '3',
    parse: integer(0, 100),
    description: 'Retries of a job after a transient error (database, storage).',
  },
  {
    env: 'JOB_BACKOFF_MS',
    key: 'jobBackoffMs',
    fallback: '1000',
    parse: integer(1, 3_600_000),
    description: 'First retry delay; it doubles on each retry.',
  },
  {
    env: 'SHUTDOWN_TIMEOUT_MS',
    key: 'shutdownTimeoutMs',
    fallback: '25000',
    parse: integer(0, 3_600_000),
    description: 'How long SIGTERM waits for in-flight requests and jobs.',
  },
  {
    env: 'API_TOKENS',
    key: 'apiTokens',
    fallback: '',
    parse: tokens,
    description:
      'Bearer tokens that may call the API (comma-separated); empty, with no `API_TOKENS_FILE`, means no authentication.',
  },
  {
    env: 'API_TOKENS_FILE',
    key: 'apiTokensFile',
    fallback: '',
    parse: optionalPath,
    description: 'File with one token per line (a mounted Secret); re-read every 10 s, so rotation needs no restart.',
  },
  {
    env: 'CORS_ORIGINS',
    key: 'corsOrigins',
    fallback: '',
    parse: origins,
    description: 'Origins allowed to call the API from a browser (comma-separated, or `*`); empty means CORS is off.',
  },
  {
    env: 'MAX_BACKLOG',
    key: 'maxBacklog',
    fallback: '50000',
    parse: integer(0, 100_000_000),
    description: 'Waiting jobs above which uploads answer `503 overloaded`; 0 turns the check off.',
  },
  {
    env: 'RATE_LIMIT_PER_SECOND',
    key: 'rateLimitPerSecond',
    fallback: '0',
    parse: integer(0, 1_000_000),
    description:
      'Uploads per second per client (token, or address without tokens) before `429 rate_limited`; 0 turns it off.',
  },
  {
    env: 'RATE_LIMIT_BURST',
    key: 'rateLimitBurst',
    fallback: '0',
    parse: integer(0, 1_000_000),
    description: 'Uploads a client may send at once above its rate; 0 means twice the rate.',
  },
  {
    env: 'HTTP_HEADERS_TIMEOUT_MS',
    key: 'httpHeadersTimeoutMs',
    fallback: '10000',
    parse: integer(1_000, 600_000),
    description: 'Time a client has to send its request headers (cuts off slowloris clients).',
  },
  {
    env: 'HTTP_REQUEST_TIMEOUT_MS',
    key: 'httpRequestTimeoutMs',
    fallback: '900000',
    parse: integer(1_000, 86_400_000),
    description: 'Time a client has to send a whole request, body included.',
  },
  {
    env: 'HTTP_IDLE_TIMEOUT_MS',
    key: 'httpIdleTimeoutMs',
    fallback: '60000',
    parse: integer(1_000, 3_600_000),
    description: 'A connection that sends or receives nothing for this long is closed.',
  },
  {
    env: 'HTTP_MIN_BYTES_PER_SECOND',
    key: 'httpMinBytesPerSecond',
    fallback: '1024',
    parse: integer(0, 1_000_000_000),
    description:
      'An upload body that sends fewer bytes a second than this, over a window of `HTTP_MIN_RATE_WINDOW_MS`, is cut (`408 request_timeout`); time the service holds the body back does not count. 0 turns the check off.',
  },
  {
    env: 'HTTP_MIN_RATE_WINDOW_MS',
    key: 'httpMinRateWindowMs',
    fallback: '20000',
    parse: integer(1_000, 3_600_000),
    description: 'The window over which `HTTP_MIN_BYTES_PER_SECOND` is measured.',
  },
  {
    env: 'HTTP_KEEP_ALIVE_TIMEOUT_MS',
    key: 'httpKeepAliveTimeoutMs',
    fallback: '5000',
    parse: integer(0, 600_000),
    description: "How long an idle keep-alive connection stays open (keep it below the load balancer's).",
  },
  {
    env: 'HTTP_MAX_HEADER_BYTES',
    key: 'httpMaxHeaderBytes',
    fallback: '16384',
    parse: integer(1_024, 1_048_576),
    description: 'Largest request header block; bigger answers 431.',
  },
  {
    env: 'MAX_ATTEMPTS',
    key: 'maxAttempts',
    fallback: '5',
    parse: integer(1, 100),
    description:
      'Processing starts after which a file that keeps failing or crashing workers becomes `failed` (`too_many_attempts`).',
  },
  {
    env: 'QUEUE_STALL_INTERVAL_MS',
    key: 'queueStallIntervalMs',
    fallback: '5000',
    parse: integer(100, 600_000),
    description: 'How often workers look for jobs whose worker died (bee-queue stall check).',
  },
  {
    env: 'RECONCILE_INTERVAL_MS',
    key: 'reconcileIntervalMs',
    fallback: '30000',
    parse: integer(100, 3_600_000),
    description:
      "How often the worker's reconciler ticks, in one worker at a time: the leader, whose Redis lock lives one interval past its last renewal, so another worker takes over within two intervals of its death. Its repairs (re-queues, orphan blobs) run at every tick, its housekeeping (temporary files, idempotency keys, direct and resumable uploads, webhook retention) every tenth, at most an hour apart.",
  },
  {
    env: 'REQUEUE_AFTER_MS',
    key: 'requeueAfterMs',
    fallback: '60000',
    parse: integer(100, 86_400_000),
    description: 'Age after which the reconciler re-enqueues a queued file, or a processing file whose job is gone.',
  },
  {
    env: 'ORPHAN_AFTER_MS',
    key: 'orphanAfterMs',
    fallback: '3600000',
    parse: integer(1_000, 604_800_000),
    description: 'Age after which the reconciler removes temporary files and blobs that have no row.',
  },
  {
    env: 'JOB_TIMEOUT_MS',
    key: 'jobTimeoutMs',
    fallback: '60000',
    parse: integer(1_000, 3_600_000),
    description:
      'Longest one job may run; parsing that outlasts it (or uses as much CPU time) is stopped and the file fails with `timeout`, without retries.',
  },
  {
    env: 'IMAGE_MAX_PIXELS',
    key: 'imageMaxPixels',
    fallback: '50000000',
    parse: integer(1, 1_000_000_000),
    description:
      'Largest image decoded (width × height); a larger one fails with `image_too_large` before a pixel is decoded.',
  },
  {
    env: 'PARSER_MAX_RSS_BYTES',
    key: 'parserMaxRssBytes',
    fallback: '256MiB',
    parse: bytes,
    description:
      'Memory (RSS) one parser process may use; past it the process is killed and its file fails with `out_of_memory`, without retries. The worker runs one per concurrent job: size its memory limit as `WORKER_CONCURRENCY` times this plus 200 MiB.',
  },
  {
    env: 'PDF_MAX_DECODED_BYTES',
    key: 'pdfMaxDecodedBytes',
    fallback: '64MiB',
    parse: bytes,
    description:
      "Most bytes a PDF's streams may decode to (inflated page content, fonts); past it the PDF is `processed` with its text cut short and a warning, so a small file cannot inflate to gigabytes.",
  },
  {
    env: 'MAX_RESULT_BYTES',
    key: 'maxResultBytes',
    fallback: '64KiB',
    parse: bytesWithin(4 * 1024, 16 * 1024 * 1024),
    description:
      'Largest `result` a file may have, as JSON: past it the longest lists and strings are cut and `result.truncated` is true (every string taken out of a file is also cut to 1 KiB, and every list to 100 items), so no file can swell what a list page or a webhook carries.',
  },
  {
    env: 'SCAN_CLAMD',
    key: 'scanClamd',
    fallback: '',
    parse: optionalClamdAddress,
    description:
      "Malware scanning with ClamAV: clamd's address, `tcp://host:3310` or the path of its unix socket. Set, every file is scanned before anything else, and its bytes are served only once cleared (`409 scan_pending` until then, `403 file_infected` after a detection); the API and the workers both need it. Empty: scanning is off and `scan` is null.",
  },
  {
    env: 'SCAN_UNSCANNABLE',
    key: 'scanUnscannable',
    fallback: 'fail',
    parse: oneOf(['fail', 'allow']),
    description:
      "What becomes of a file over clamd's limits (`StreamMaxLength`, `MaxFileSize`, `MaxScanSize` with `AlertExceedsMax yes`), which clamd cannot call clean: `fail` (the file fails with `unscannable`, its bytes never served) or `allow` (processed and served, `scan.status` saying `unscannable`).",
  },
  {
    env: 'SCAN_TIMEOUT_MS',
    key: 'scanTimeoutMs',
    fallback: '60000',
    parse: integer(1_000, 3_600_000),
    description:
      'A scan that makes no progress for this long counts as no verdict: the file waits and is scanned again later; after three such tries in a row while clamd answers PING, it is unscannable.',
  },
  {
    env: 'POD_DELETION_COST',
    key: 'podDeletionCost',
    fallback: 'false',
    parse: boolean,
    description:
      'The worker marks its pod with `controller.kubernetes.io/pod-deletion-cost` when it goes busy or idle, so a scale-in removes idle pods first (needs `POD_NAME`, `POD_NAMESPACE` and RBAC to patch pods; the chart sets them).',
  },
  {
    env: 'POD_NAME',
    key: 'podName',
    fallback: '',
    parse: optionalDnsName,
    description: "This pod's name, from the downward API (for `POD_DELETION_COST`).",
  },
  {
    env: 'POD_NAMESPACE',
    key: 'podNamespace',
    fallback: '',
    parse: optionalDnsName,
    description: "This pod's namespace, from the downward API (for `POD_DELETION_COST`).",
  },
  {
    env: 'LOG_LEVEL',
    key: 'logLevel',
    fallback: 'info',
    parse: oneOf(LOG_LEVELS),
    description: `Log level: ${LOG_LEVELS.join(', ')}.`,
  },
  {
    env: 'LIVENESS_MAX_EVENT_LOOP_DELAY_MS',
    key: 'livenessMaxEventLoopDelayMs',
    fallback: '5000',
    parse: integer(0, 3_600_000),
    description:
      '`/healthz` answers 503 while the longest event-loop stall of the last 10 s exceeds this; 0 turns the check off.',
  },
  {
    env: 'TUS_EXPIRE_AFTER_MS',
    key: 'tusExpireAfterMs',
    fallback: '86400000',
    parse: integer(60_000, 2_592_000_000),
    description:
      'A resumable (tus) upload not finished this long after it was created expires (`Upload-Expires`), and the reconciler removes its bytes.',
  },
  {
    env: 'TUS_LOCK_TTL_MS',
    key: 'tusLockTtlMs',
    fallback: '30000',
    parse: integer(300, 600_000),
    description:
      'The lock a request holds on a resumable upload (in Redis, shared by every API pod) expires this long after its pod stopped renewing it: how long an upload waits after its pod died.',
  },
  {
    env: 'MAX_WAITERS',
    key: 'maxWaiters',
    fallback: '1000',
    parse: integer(0, 100_000),
    description:
      'Requests one API process lets wait at once on `GET /files/{id}/?wait=N`; more answer `429 rate_limited`. 0 turns waiting off (`wait` is then ignored).',
  },
  {
    env: 'WEBHOOK_ALLOW_HTTP',
    key: 'webhookAllowHttp',
    fallback: 'false',
    parse: boolean,
    description:
      'Webhook URLs may be `http://` as well as `https://` (for receivers inside the cluster or on this machine).',
  },
  {
    env: 'WEBHOOK_ALLOW_PRIVATE',
    key: 'webhookAllowPrivate',
    fallback: 'false',
    parse: boolean,
    description:
      'Webhooks may be sent to loopback, private, link-local, CGNAT and cloud-metadata addresses; off, such URLs are refused at registration and at every send (a name that resolves there later included).',
  },
  {
    env: 'WEBHOOK_TIMEOUT_MS',
    key: 'webhookTimeoutMs',
    fallback: '10000',
    parse: integer(100, 60_000),
    description:
      'A webhook receiver that has not answered within this (headers and body) fails the attempt, to be retried.',
  },
  {
    env: 'WEBHOOK_MAX_ATTEMPTS',
    key: 'webhookMaxAttempts',
    fallback: '9',
    parse: integer(1, 30),
    description:
      'Attempts per webhook delivery before it is `failed`; with the default retry base, 9 attempts span about 25 hours.',
  },
  {
    env: 'WEBHOOK_RETRY_BASE_MS',
    key: 'webhookRetryBaseMs',
    fallback: '5000',
    parse: integer(10, 3_600_000),
    description:
      'Delay before the first webhook retry; each next one is 5 times longer (at most 10 hours), with ±20% jitter.',
  },
  {
    env: 'WEBHOOK_DISABLE_AFTER_MS',
    key: 'webhookDisableAfterMs',
    fallback: '86400000',
    parse: integer(1_000, 2_592_000_000),
    description:
      'A webhook endpoint whose deliveries have all failed for this long is disabled (`enabled: false`, `disabled_reason: failing`).',
  },
  {
    env: 'WEBHOOK_CONCURRENCY',
    key: 'webhookConcurrency',
    fallback: '16',
    parse: integer(1, 1_000),
    description: 'Webhook deliveries one worker process sends at once.',
  },
  {
    env: 'WEBHOOK_ENDPOINT_CONCURRENCY',
    key: 'webhookEndpointConcurrency',
    fallback: '4',
    parse: integer(1, 1_000),
    description:
      'Deliveries one worker process sends at once to any one endpoint, so a slow receiver cannot take every slot.',
  },
  {
    env: 'WEBHOOK_RETENTION_MS',
    key: 'webhookRetentionMs',
    fallback: '604800000',
    parse: integer(60_000, 31_536_000_000),
    description: 'How long delivered and failed webhook deliveries stay listed before the reconciler removes them.',
  },
  {
    env: 'MAX_WEBHOOK_ENDPOINTS',
    key: 'maxWebhookEndpoints',
    fallback: '100',
    parse: integer(1, 10_000),
    description:
      'Webhook endpoints the service keeps, enabled or not, whoever registered them; `POST /webhooks/` beyond it answers `409 webhook_limit_reached`. Each File event is sent to every endpoint subscribed to it, so this bounds the work one event makes.',
  },
];

/** Reads and validates every setting; throws ConfigError with a sentence naming the variable. */
export function loadConfig(role: Role, env: NodeJS.ProcessEnv = process.env): Config {
  const config: Partial<Record<keyof Config, unknown>> = { role };
  for (const setting of SETTINGS) {
    const fallback = typeof setting.fallback === 'function' ? setting.fallback(role) : setting.fallback;
    const raw = env[setting.env] ?? fallback;
    config[setting.key] = setting.parse(raw, setting.env);
  }
  const loaded = config as Config;
  try {
    loaded.queueRoutes = parseQueueRoutes(config.queueRoutes as string, loaded.queueName);
  } catch (err) {
    throw new ConfigError(`QUEUE_ROUTES: ${routeProblem(err)}`);
  }
  try {
    loaded.workerQueues = parseWorkerQueues(
      config.workerQueues as string,
      loaded.queueRoutes,
      loaded.workerConcurrency,
    );
  } catch (err) {
    throw new ConfigError(`WORKER_QUEUES: ${routeProblem(err)}`);
  }
  if (loaded.rateLimitBurst === 0) loaded.rateLimitBurst = loaded.rateLimitPerSecond * 2;
  if (loaded.blobStore === 's3' && loaded.s3Bucket === null && role !== 'migrate') {
    throw new ConfigError('BLOB_STORE=s3 needs S3_BUCKET, the name of an existing bucket.');
  }
  if (loaded.downloadRedirect && loaded.blobStore !== 's3') {
    throw new ConfigError('DOWNLOAD_REDIRECT=true needs BLOB_STORE=s3: a presigned URL points into a bucket.');
  }
  return loaded;
}

const routeProblem = (err: unknown): string => {
  if (err instanceof RouteError) return err.message;
  throw err;
};

/** host:port of a connection URL, for error messages that must not leak credentials. */
export function addressOf(connectionUrl: string): string {
  const parsed = new URL(connectionUrl);
  return parsed.port ? `${parsed.hostname}:${parsed.port}` : parsed.hostname;
}
