import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { dropDatabase, ensureDatabaseExists } from '../core/db/index.js';
import type { File } from '../core/fileRecord.js';
import { TEST_ENV } from './support/env.js';
import { eventually } from './support/eventually.js';
import { sharedGateway, type Gateway } from './support/rgw.js';
import {
  childrenOf,
  freePort,
  killStartedProcesses,
  runProcess,
  READY_TIMEOUT_MS,
  startApiAndWorker,
  startProcess,
  waitUntilReady,
  type ApiAndWorker,
} from './support/processes.js';
import { uploadFile, waitForStatus } from './support/service.js';

const databaseNamed = (name: string) => {
  const url = new URL(TEST_ENV.databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
};

describe('the real processes', function () {
  // Room for an API and a worker to start on a busy machine (see READY_TIMEOUT_MS).
  this.timeout(60_000 + 2 * READY_TIMEOUT_MS);
  after(killStartedProcesses);

  describe('npm run migrate', () => {
    const url = databaseNamed(`fp_test_migrate_${randomBytes(3).toString('hex')}`);
    after(() => dropDatabase(url));

    it('creates the database when it is missing, migrates it, and is idempotent', async () => {
      const first = await runProcess('dist/core/db/migrate.js', { DATABASE_URL: url });
      expect(first.code, first.output).to.equal(0);
      expect(first.output).to.contain('created the database').and.contain('applied 0001-create-files');
      const second = await runProcess('dist/core/db/migrate.js', { DATABASE_URL: url });
      expect(second.code, second.output).to.equal(0);
      expect(second.output).to.equal('the schema is up to date\n');
    });

    it('runs safely from several processes at once', async () => {
      const other = databaseNamed(`fp_test_migrate_${randomBytes(3).toString('hex')}`);
      try {
        const runs = await Promise.all(
          [1, 2, 3].map(() => runProcess('dist/core/db/migrate.js', { DATABASE_URL: other })),
        );
        for (const run of runs) expect(run.code, run.output).to.equal(0);
        expect(runs.filter((run) => run.output.includes('applied 0001-create-files'))).to.have.length(1);
      } finally {
        await dropDatabase(other);
      }
    });
  });

  describe('start-up failures', () => {
    const cases: Array<[string, Record<string, string>, RegExp]> = [
      ['a bad setting', { PORT: 'eighty' }, /^PORT must be a whole number from 1 to 65535, got "eighty"\.\n$/],
      [
        'PostgreSQL not answering',
        { DATABASE_URL: 'postgres://postgres@127.0.0.1:9/x' },
        /^PostgreSQL at 127\.0\.0\.1:9 does not answer \(ECONNREFUSED\): start it, or set DATABASE_URL\.\n$/,
      ],
      [
        'a database that does not exist',
        { DATABASE_URL: databaseNamed('fp_test_never_created') },
        /^The database in DATABASE_URL does not exist at 127\.0\.0\.1:5432: run `npm run migrate`, which creates it\.\n$/,
      ],
      [
        'Redis not answering',
        { REDIS_URL: 'redis://127.0.0.1:9' },
        /^Redis at 127\.0\.0\.1:9 does not answer \(ECONNREFUSED\): start it, or set REDIS_URL\.\n$/,
      ],
      [
        'an unusable STORAGE_DIR',
        { STORAGE_DIR: '/etc/hostname' },
        /^STORAGE_DIR \/etc\/hostname is not writable \(ENOTDIR\): create it with write access, or set STORAGE_DIR\.\n$/,
      ],
    ];
    for (const [what, env, message] of cases) {
      for (const script of ['dist/api/main.js', 'dist/worker/main.js']) {
        it(`${script.split('/')[1]} stops with one sentence on ${what}`, async () => {
          const { code, output } = await runProcess(script, { ...env, LOG_LEVEL: 'silent' });
          expect(code).to.equal(1);
          expect(output).to.match(message);
        });
      }
    }

    describe('with BLOB_STORE=s3', () => {
      let gateway: Gateway;
      let bucket: string;
      before(async function () {
        this.timeout(60_000);
        gateway = await sharedGateway(this);
        bucket = await gateway.createBucket();
      });
      const s3Cases: Array<[string, (env: Record<string, string>) => Record<string, string>, RegExp]> = [
        [
          'no bucket named',
          (env) => ({ ...env, S3_BUCKET: '' }),
          /^BLOB_STORE=s3 needs S3_BUCKET, the name of an existing bucket\.\n$/,
        ],
        [
          'a bucket that does not exist',
          (env) => ({ ...env, S3_BUCKET: 'fp-never-created' }),
          /^S3_BUCKET fp-never-created does not exist at http:\/\/127\.0\.0\.1:\d+: create it, or set S3_BUCKET\.\n$/,
        ],
        [
          'a wrong secret key',
          (env) => ({ ...env, AWS_SECRET_ACCESS_KEY: 'not-the-secret' }),
          /^http:\/\/127\.0\.0\.1:\d+ refused the credentials for bucket fp-\w+ \(403\): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give the pod an identity with access to it\.\n$/,
        ],
        [
          'an endpoint that does not answer',
          (env) => ({ ...env, S3_ENDPOINT: 'http://127.0.0.1:9' }),
          /^The S3 endpoint http:\/\/127\.0\.0\.1:9 does not answer for bucket fp-\w+ \(ECONNREFUSED\): start it, or set S3_ENDPOINT\.\n$/,
        ],
      ];
      for (const [what, envFor, message] of s3Cases) {
        for (const script of ['dist/api/main.js', 'dist/worker/main.js']) {
          it(`${script.split('/')[1]} stops with one sentence on ${what}`, async () => {
            const env = envFor(gateway.env(bucket));
            const { code, output } = await runProcess(script, { ...env, LOG_LEVEL: 'silent' });
            expect(code).to.equal(1);
            expect(output).to.match(message);
          });
        }
      }

      it('starts against the bucket, and /readyz checks it', async () => {
        const processes = await startApiAndWorker(gateway.env(bucket));
        try {
          const ready = await fetch(`${processes.apiAdmin}/readyz`);
          expect(ready.status).to.equal(200);
          expect(((await ready.json()) as { checks: Record<string, string> }).checks).to.include({ storage: 'ok' });
          const file = await uploadFile(processes.url, { name: 'a.txt', content: 'into the bucket' });
          expect((await waitForStatus(processes.url, file.id)).status).to.equal('processed');
        } finally {
          await processes.terminate();
        }
      });
    });

    it('names pending migrations', async () => {
      const url = databaseNamed(`fp_test_bare_${randomBytes(3).toString('hex')}`);
      await ensureDatabaseExists(url);
      try {
        const { code, output } = await runProcess('dist/api/main.js', { DATABASE_URL: url });
        expect(code).to.equal(1);
        expect(output).to.equal('The database at 127.0.0.1:5432 has pending migrations: run `npm run migrate`.\n');
      } finally {
        await dropDatabase(url);
      }
    });

    it('names a port already taken', async () => {
      const port = await freePort();
      const first = startProcess('dist/api/main.js', { PORT: String(port), ADMIN_PORT: String(await freePort()) });
      try {
        await waitUntilReady(first, `http://127.0.0.1:${port}/files/`);
        const { code, output } = await runProcess('dist/api/main.js', {
          PORT: String(port),
          ADMIN_PORT: String(await freePort()),
        });
        expect(code).to.equal(1);
        expect(output).to.equal(`Cannot listen on 127.0.0.1:${port} (EADDRINUSE): free the port, or set PORT.\n`);
      } finally {
        first.child.kill('SIGTERM');
        await first.exited;
      }
    });
  });

  describe('the API and a worker', () => {
    let processes: ApiAndWorker;
    const queueName = `e2e-${randomBytes(3).toString('hex')}`;

    before(async () => {
      processes = await startApiAndWorker({
        QUEUE_NAME: queueName,
        LOG_LEVEL: 'info',
        SHUTDOWN_TIMEOUT_MS: '5000',
      });
    });
    after(() => {
      processes.api.child.kill('SIGKILL');
      processes.worker.child.kill('SIGKILL');
    });

    it('uploads, processes and lists a file', async () => {
      const file = await uploadFile(processes.url, { name: 'README.md', content: '# hello\n' });
      const done = await waitForStatus(processes.url, file.id, ['processed', 'failed'], 5_000);
      expect(done.processed).to.equal(true);
      const list = (await (await fetch(`${processes.url}/files/`)).json()) as { results: File[] };
      expect(list.results.find((f) => f.id === file.id)?.processed).to.equal(true);
    });

    it('serves metrics on both admin ports', async () => {
      expect(await (await fetch(`${processes.apiAdmin}/metrics`)).text()).to.contain('uploads_total{kind="text"} 1');
      expect(await (await fetch(`${processes.workerAdmin}/metrics`)).text()).to.contain(
        `jobs_processed_total{queue="${queueName}",kind="text",outcome="processed"} 1`,
      );
    });

    it('logs one JSON line per request and per job', () => {
      const requestLine = processes.api
        .output()
        .split('\n')
        .find((line) => line.includes('"route":"/upload/"'));
      expect(JSON.parse(requestLine!)).to.include({ method: 'POST', status: 201, msg: 'request' });
      const jobLine = processes.worker
        .output()
        .split('\n')
        .find((line) => line.includes('"outcome":"processed"'));
      expect(JSON.parse(jobLine!)).to.include({ kind: 'text', attempts: 1, msg: 'job' });
    });

    it('both exit 0 on SIGTERM', async () => {
      const exited = await processes.terminate();
      expect(exited.api).to.equal(0);
      expect(exited.worker).to.equal(0);
    });
  });

  describe('npm start (make run)', () => {
    it('runs the API and a worker, and Ctrl-C stops both cleanly', async () => {
      const [port, adminPort, workerAdminPort] = [await freePort(), await freePort(), await freePort()];
      const env = {
        PORT: String(port),
        ADMIN_PORT: String(adminPort),
        WORKER_ADMIN_PORT: String(workerAdminPort),
        LOG_LEVEL: 'info',
        QUEUE_NAME: `run-${randomBytes(3).toString('hex')}`,
      };
      const run = startProcess('dist/scripts/run.js', env, { detached: true });
      try {
        await waitUntilReady(run, `http://127.0.0.1:${adminPort}/readyz`);
        await waitUntilReady(run, `http://127.0.0.1:${workerAdminPort}/readyz`);
        const file = await uploadFile(`http://127.0.0.1:${port}`, { content: 'via make run' });
        const done = await waitForStatus(`http://127.0.0.1:${port}`, file.id, ['processed'], 5_000);
        expect(done.processed).to.equal(true);
      } finally {
        // Ctrl-C in a terminal signals the whole foreground process group.
        process.kill(-run.child.pid!, 'SIGINT');
      }
      expect(await run.exited).to.equal(0);
      expect(run.output()).to.contain('"msg":"stopped"');
    });

    it('starts a worker that died again after a back-off, and the API never notices', async () => {
      const [port, adminPort, workerAdminPort] = [await freePort(), await freePort(), await freePort()];
      const env = {
        PORT: String(port),
        ADMIN_PORT: String(adminPort),
        WORKER_ADMIN_PORT: String(workerAdminPort),
        QUEUE_NAME: `run-${randomBytes(3).toString('hex')}`,
      };
      const run = startProcess('dist/scripts/run.js', env, { detached: true });
      try {
        await waitUntilReady(run, `http://127.0.0.1:${adminPort}/readyz`);
        await waitUntilReady(run, `http://127.0.0.1:${workerAdminPort}/readyz`);
        const [apiPid, workerPid] = childrenOf(run.child.pid!);
        process.kill(workerPid!, 'SIGKILL');
        await eventually(
          () => run.output().includes('worker/main.js exited (SIGKILL); starting it again in 1 s.'),
          'the restart notice',
        );
        await waitUntilReady(run, `http://127.0.0.1:${workerAdminPort}/readyz`);
        const [apiPidAfter, workerPidAfter] = childrenOf(run.child.pid!);
        expect(apiPidAfter).to.equal(apiPid);
        expect(workerPidAfter).to.not.equal(workerPid);
        const file = await uploadFile(`http://127.0.0.1:${port}`, { content: 'after the restart' });
        expect((await waitForStatus(`http://127.0.0.1:${port}`, file.id, ['processed'], 10_000)).processed).to.equal(
          true,
        );
      } finally {
        process.kill(-run.child.pid!, 'SIGINT');
      }
      expect(await run.exited).to.equal(0);
    });

    it('stops the other process when one exits on its own, and says so', async () => {
      const env = {
        PORT: 'not-a-port',
        WORKER_ADMIN_PORT: String(await freePort()),
        QUEUE_NAME: `run-${randomBytes(3).toString('hex')}`,
      };
      const run = startProcess('dist/scripts/run.js', env);
      expect(await run.exited).to.equal(1);
      expect(run.output())
        .to.contain('PORT must be a whole number')
        .and.match(/(api|worker)\/main\.js exited \(1\); stopping the rest/);
    });
  });
});
