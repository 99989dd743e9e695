// Every setting comes from the environment, is parsed once at start into a typed object,
// and a bad value stops the process with one sentence naming the variable and the fix.
import path from 'node:path';

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
  redisUrl: string;
  queuePrefix: string;
  queueName: string;
  storageDir: string;
  maxUploadBytes: number;
  workerConcurrency: number;
  jobRetries: number;
  jobBackoffMs: number;
  shutdownTimeoutMs: number;
  logLevel: string;
  podDeletionCost: boolean;
  podName: string | null;
  podNamespace: string | null;
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

const integer = (min: number, max: number): Parse<number> => (raw, name) => {
  const value = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max}, got "${raw}".`);
  }
  return value;
};

const port: Parse<number> = integer(1, 65535);

const bytes: Parse<number> = (raw, name) => {
  const match = /^(\d+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(raw.trim());
  const units: Record<string, number> = { b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };
  const value = match ? Number(match[1]) * (units[(match[2] ?? 'b').toLowerCase()] ?? 1) : NaN;
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new ConfigError(`${name} must be a positive size in bytes such as 104857600 or 100MiB, got "${raw}".`);
  }
  return value;
};

const boolean: Parse<boolean> = (raw, name) => {
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}".`);
};

const url = (protocols: string[], example: string): Parse<string> => (raw, name) => {
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(`${name} must be a URL such as ${example}, got "${raw}".`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(`${name} must start with ${protocols.map((p) => `${p}//`).join(' or ')}, such as ${example}; got "${raw}".`);
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
    throw new ConfigError(`${envName} must be a Kubernetes name (lowercase letters, digits, "-" and "."), got "${raw}".`);
  }
  return raw;
};

const text: Parse<string> = (raw, envName) => {
  if (raw.trim() === '') throw new ConfigError(`${envName} must not be empty.`);
  return raw;
};

const oneOf = (choices: string[]): Parse<string> => (raw, envName) => {
  if (!choices.includes(raw)) throw new ConfigError(`${envName} must be one of ${choices.join(', ')}, got "${raw}".`);
  return raw;
};

/** The settings table: README.md documents exactly these (a test keeps them in step). */
export const SETTINGS: Setting[] = [
  { env: 'HOST', key: 'host', fallback: '0.0.0.0', parse: text, description: 'Interface the API and admin servers listen on.' },
  { env: 'PORT', key: 'port', fallback: '8080', parse: port, description: 'API port.' },
  { env: 'ADMIN_PORT', key: 'adminPort', fallback: (role) => (role === 'worker' ? '9091' : '9090'), parse: port, description: 'Admin port (`/healthz`, `/readyz`, `/metrics`): 9090 for the API, 9091 for the worker.' },
  { env: 'PUBLIC_URL', key: 'publicUrl', fallback: '', parse: optionalUrl, description: 'Base of the absolute URLs in responses (`file`, `next`); empty means the request\'s own origin.' },
  { env: 'TRUST_PROXY', key: 'trustProxy', fallback: 'false', parse: boolean, description: 'Honour `X-Forwarded-Proto`/`-Host`/`-For` from the ingress.' },
  { env: 'DATABASE_URL', key: 'databaseUrl', fallback: 'postgres://postgres@127.0.0.1:5432/file_processor', parse: url(['postgres:', 'postgresql:'], 'postgres://user:password@host:5432/file_processor'), description: 'PostgreSQL connection URL; `npm run migrate` creates the database when it is missing.' },
  { env: 'DATABASE_POOL_MAX', key: 'databasePoolMax', fallback: '10', parse: integer(1, 500), description: 'Connections per process.' },
  { env: 'REDIS_URL', key: 'redisUrl', fallback: 'redis://127.0.0.1:6379', parse: url(['redis:', 'rediss:'], 'redis://host:6379/0'), description: 'Redis connection URL for the queue.' },
  { env: 'QUEUE_PREFIX', key: 'queuePrefix', fallback: 'bq', parse: name, description: 'Prefix of the queue\'s Redis keys (`<prefix>:<name>:waiting`, ...).' },
  { env: 'QUEUE_NAME', key: 'queueName', fallback: 'files', parse: name, description: 'Queue name.' },
  { env: 'STORAGE_DIR', key: 'storageDir', fallback: './data', parse: (raw, envName) => path.resolve(text(raw, envName)), description: 'Directory of the blob store, shared by the API and the workers.' },
  { env: 'MAX_UPLOAD_BYTES', key: 'maxUploadBytes', fallback: '100MiB', parse: bytes, description: 'Largest accepted file (bytes, or with a unit: `KiB`, `MiB`, `GiB`).' },
  { env: 'WORKER_CONCURRENCY', key: 'workerConcurrency', fallback: '4', parse: integer(1, 256), description: 'Jobs one worker process runs at once.' },
  { env: 'JOB_RETRIES', key: 'jobRetries', fallback: '3', parse: integer(0, 100), description: 'Retries of a job after a transient error (database, storage).' },
  { env: 'JOB_BACKOFF_MS', key: 'jobBackoffMs', fallback: '1000', parse: integer(1, 3_600_000), description: 'First retry delay; it doubles on each retry.' },
  { env: 'SHUTDOWN_TIMEOUT_MS', key: 'shutdownTimeoutMs', fallback: '25000', parse: integer(0, 3_600_000), description: 'How long SIGTERM waits for in-flight requests and jobs.' },
  { env: 'POD_DELETION_COST', key: 'podDeletionCost', fallback: 'false', parse: boolean, description: 'The worker marks its pod with `controller.kubernetes.io/pod-deletion-cost` when it goes busy or idle, so a scale-in removes idle pods first (needs `POD_NAME`, `POD_NAMESPACE` and RBAC to patch pods; the chart sets them).' },
  { env: 'POD_NAME', key: 'podName', fallback: '', parse: optionalDnsName, description: 'This pod\'s name, from the downward API (for `POD_DELETION_COST`).' },
  { env: 'POD_NAMESPACE', key: 'podNamespace', fallback: '', parse: optionalDnsName, description: 'This pod\'s namespace, from the downward API (for `POD_DELETION_COST`).' },
  { env: 'LOG_LEVEL', key: 'logLevel', fallback: 'info', parse: oneOf(LOG_LEVELS), description: `Log level: ${LOG_LEVELS.join(', ')}.` },
];

/** Reads and validates every setting; throws ConfigError with a sentence naming the variable. */
export function loadConfig(role: Role, env: NodeJS.ProcessEnv = process.env): Config {
  const config: Partial<Record<keyof Config, unknown>> = { role };
  for (const setting of SETTINGS) {
    const fallback = typeof setting.fallback === 'function' ? setting.fallback(role) : setting.fallback;
    const raw = env[setting.env] ?? fallback;
    config[setting.key] = setting.parse(raw, setting.env);
  }
  return config as Config;
}

/** host:port of a connection URL, for error messages that must not leak credentials. */
export function addressOf(connectionUrl: string): string {
  const parsed = new URL(connectionUrl);
  return parsed.port ? `${parsed.hostname}:${parsed.port}` : parsed.hostname;
}
