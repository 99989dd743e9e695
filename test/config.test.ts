import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { ConfigError, loadConfig, SETTINGS } from '../core/config.js';

describe('configuration', () => {
  it('has defaults that work on a developer machine', () => {
    const api = loadConfig('api', {});
    expect(api).to.include({
      port: 8080,
      adminPort: 9090,
      host: '0.0.0.0',
      databaseUrl: 'postgres://postgres@127.0.0.1:5432/file_processor',
      redisUrl: 'redis://127.0.0.1:6379',
      queuePrefix: 'bq',
      queueName: 'files',
      maxUploadBytes: 100 * 1024 * 1024,
      publicUrl: null,
      trustProxy: false,
      jobTimeoutMs: 60_000,
      imageMaxPixels: 50_000_000,
      httpMinBytesPerSecond: 1024,
      httpMinRateWindowMs: 20_000,
    });
    expect(api.storageDir).to.equal(path.resolve('data'));
    expect(loadConfig('worker', {}).adminPort).to.equal(9091);
  });

  it('reads every setting from the environment', () => {
    const config = loadConfig('api', {
      PORT: '3000',
      MAX_UPLOAD_BYTES: '2MiB',
      TRUST_PROXY: 'yes',
      PUBLIC_URL: 'https://files.example.com/',
      WORKER_CONCURRENCY: '8',
      LOG_LEVEL: 'debug',
      STORAGE_DIR: '/srv/blobs',
    });
    expect(config).to.include({
      port: 3000,
      maxUploadBytes: 2 * 1024 * 1024,
      trustProxy: true,
      publicUrl: 'https://files.example.com',
      workerConcurrency: 8,
      logLevel: 'debug',
      storageDir: '/srv/blobs',
    });
  });

  it('stops with one sentence naming the variable and the expected form', () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ PORT: 'http' }, /^PORT must be a whole number from 1 to 65535, got "http"\.$/],
      [{ PORT: '70000' }, /^PORT must be/],
      [{ ADMIN_PORT: '-1' }, /^ADMIN_PORT must be/],
      [{ DATABASE_URL: 'mysql://x/y' }, /^DATABASE_URL must start with postgres:\/\/ or postgresql:\/\//],
      [{ DATABASE_URL: 'not a url' }, /^DATABASE_URL must be a URL such as postgres:\/\//],
      [{ REDIS_URL: 'http://x' }, /^REDIS_URL must start with redis:\/\//],
      [
        { MAX_UPLOAD_BYTES: 'lots' },
        /^MAX_UPLOAD_BYTES must be a positive size in bytes such as 104857600 or 100MiB, got "lots"\.$/,
      ],
      [{ MAX_UPLOAD_BYTES: '0' }, /^MAX_UPLOAD_BYTES must be/],
      [{ TRUST_PROXY: 'maybe' }, /^TRUST_PROXY must be true or false, got "maybe"\.$/],
      [{ PUBLIC_URL: 'ftp://x' }, /^PUBLIC_URL must start with http:\/\/ or https:\/\//],
      [{ QUEUE_PREFIX: 'bad prefix!' }, /^QUEUE_PREFIX must be 1 to 64 letters/],
      [
        { LOG_LEVEL: 'loud' },
        /^LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent, got "loud"\.$/,
      ],
      [{ STORAGE_DIR: ' ' }, /^STORAGE_DIR must not be empty\.$/],
      [{ WORKER_CONCURRENCY: '0' }, /^WORKER_CONCURRENCY must be a whole number from 1 to 256/],
      [{ JOB_TIMEOUT_MS: '10' }, /^JOB_TIMEOUT_MS must be a whole number from 1000 to 3600000, got "10"\.$/],
      [{ IMAGE_MAX_PIXELS: '50MP' }, /^IMAGE_MAX_PIXELS must be a whole number from 1 to 1000000000/],
      [
        { HTTP_MIN_RATE_WINDOW_MS: '0' },
        /^HTTP_MIN_RATE_WINDOW_MS must be a whole number from 1000 to 3600000, got "0"\.$/,
      ],
      [
        { POD_NAME: 'Worker_1' },
        /^POD_NAME must be a Kubernetes name \(lowercase letters, digits, "-" and "\."\), got "Worker_1"\.$/,
      ],
    ];
    for (const [env, message] of cases) {
      expect(() => loadConfig('api', env), JSON.stringify(env)).to.throw(ConfigError, message);
    }
  });

  it('is documented in README.md, every variable with its default', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    for (const setting of SETTINGS) {
      const fallback = typeof setting.fallback === 'function' ? setting.fallback('api') : setting.fallback;
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${setting.env}\``));
      expect(row, `README row for ${setting.env}`).to.be.a('string');
      if (fallback) expect(row, setting.env).to.contain(fallback);
    }
  });
});
