// `make image-test`: builds both images with podman from a locally made base image (this machine reaches no
// image registry), then runs the migration, the API and a worker as containers the way Kubernetes will:
// read-only root filesystem, a shared blob volume, no init flag. They talk to this machine's PostgreSQL and
// Redis (host network) with a database and queue prefix of their own, removed at the end.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { dropDatabase } from '../../core/db/index.js';
import { REPOSITORY, VERSION } from '../../scripts/helm.js';
import { pdf } from '../support/fixtures.js';
import { freePort, waitForHttp } from '../support/net.js';
import { deleteKeys } from '../support/redisKeys.js';

const env = { ...process.env, CONTAINERS_CONF: `${REPOSITORY}test/image/containers.conf` };

const BASE_IMAGE = 'localhost/file-processor-base:node24';
const IMAGES = { api: 'localhost/file-processor-api:image-test', worker: 'localhost/file-processor-worker:image-test' };
/** The worker with LibreOffice (`--target documents`), for a documents pool. */
const DOCUMENTS_IMAGE = 'localhost/file-processor-worker-documents:image-test';
const UID = '10001';
const run = randomBytes(3).toString('hex');
const DATABASE_URL = `postgres://postgres@127.0.0.1:5432/fp_image_${run}`;
const REDIS_URL = 'redis://127.0.0.1:6379';
const QUEUE_PREFIX = `fp-image-${run}`;
const VOLUME = `fp-image-${run}-blobs`;
const CONTAINERS = { api: `fp-image-${run}-api`, worker: `fp-image-${run}-worker` };
const SHUTDOWN_TIMEOUT_MS = 10_000;
/** What the chart gives a pod between SIGTERM and SIGKILL: the close timeout plus a margin. */
const GRACE_MS = SHUTDOWN_TIMEOUT_MS + 5_000;

interface Ran {
  code: number;
  output: string;
}

function command(program: string, args: string[], timeoutMs = 60_000): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { env, cwd: REPOSITORY, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code: code ?? -1, output });
    });
  });
}

/** Runs podman and returns its output, failing with the tail of it unless it exits 0. */
async function podman(args: string[], timeoutMs?: number): Promise<string> {
  const { code, output } = await command('podman', args, timeoutMs);
  if (code !== 0)
    throw new Error(
      `podman ${args.slice(0, 3).join(' ')} ... exited ${code}:\n${output.split('\n').slice(-40).join('\n')}`,
    );
  return output.trim();
}

const appEnv = (extra: Record<string, string>) =>
  Object.entries({
    DATABASE_URL,
    REDIS_URL,
    QUEUE_PREFIX,
    SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    ...extra,
  }).flatMap(([key, value]) => ['--env', `${key}=${value}`]);
/** How the chart runs a pod: read-only root, /tmp and the blob volume writable, the image's own user. */
const asInKubernetes = ['--network', 'host', '--read-only', '--tmpfs', '/tmp', '--volume', `${VOLUME}:/data`];

async function build(dockerfile: string, tag: string, target?: string): Promise<void> {
  const revision = (await command('git', ['rev-parse', 'HEAD'])).output.trim();
  const caBundle = '/etc/ssl/certs/ca-certificates.crt';
  await podman(
    [
      'build',
      ...['--file', dockerfile, '--tag', tag, '--network', 'host', ...(target ? ['--target', target] : [])],
      ...[
        '--build-arg',
        `BASE_IMAGE=${BASE_IMAGE}`,
        '--build-arg',
        `VERSION=${VERSION}`,
        '--build-arg',
        `REVISION=${revision}`,
      ],
      // This machine reaches the npm registry through a TLS proxy whose CA is in its own bundle.
      ...(existsSync(caBundle)
        ? ['--volume', '/etc/ssl/certs:/etc/ssl/certs:ro', '--build-arg', `NODE_EXTRA_CA_CERTS=${caBundle}`]
        : []),
      '.',
    ],
    20 * 60_000,
  );
}

const since = (start: number) => `${((Date.now() - start) / 1000).toFixed(0)} s`;

describe('the container images', function () {
  this.timeout(60_000);
  let apiUrl: string;
  let apiAdmin: string;
  let workerAdmin: string;

  before(async function () {
    this.timeout(40 * 60_000);
    let start = Date.now();
    const base = await command('bash', ['docker/local-base.sh', BASE_IMAGE], 15 * 60_000);
    if (base.code !== 0) throw new Error(`docker/local-base.sh failed:\n${base.output}`);
    process.stdout.write(`    ${base.output.trim().split('\n').at(-1)} (${since(start)})\n`);
    start = Date.now();
    await build('docker/Dockerfile.api', IMAGES.api);
    await build('docker/Dockerfile.worker', IMAGES.worker);
    await build('docker/Dockerfile.worker', DOCUMENTS_IMAGE, 'documents');
    process.stdout.write(`    built ${IMAGES.api}, ${IMAGES.worker} and ${DOCUMENTS_IMAGE} (${since(start)})\n`);
    await podman(['volume', 'create', VOLUME]);
  });

  after(async function () {
    this.timeout(120_000);
    await command('podman', ['rm', '--force', '--time', '0', CONTAINERS.api, CONTAINERS.worker]);
    await command('podman', ['volume', 'rm', '--force', VOLUME]);
    await dropDatabase(DATABASE_URL);
    await deleteKeys(REDIS_URL, `${QUEUE_PREFIX}:*`);
  });

  it('run as a numeric non-root user, with tini as the entrypoint and OCI labels', async () => {
    for (const [role, image] of Object.entries(IMAGES)) {
      const config = JSON.parse(await podman(['image', 'inspect', '--format', '{{json .Config}}', image])) as {
        User: string;
        Entrypoint: string[];
        Cmd: string[];
        Labels: Record<string, string>;
      };
      expect(config.User, image).to.equal(`${UID}:${UID}`);
      expect(config.Entrypoint, image).to.deep.equal(['/usr/bin/tini', '--']);
      expect(config.Cmd, image).to.deep.equal(['node', `dist/${role}/main.js`]);
      expect(config.Labels, image).to.include({
        'org.opencontainers.image.title': `file-processor-${role}`,
        'org.opencontainers.image.version': VERSION,
        'org.opencontainers.image.licenses': 'MIT',
      });
      expect(config.Labels['org.opencontainers.image.revision'], image).to.match(/^[0-9a-f]{40}$/);
    }
  });

  it('run the Node.js that .nvmrc pins', async () => {
    const pinned = `v${readFileSync(`${REPOSITORY}.nvmrc`, 'utf8').trim()}`;
    for (const image of Object.values(IMAGES)) {
      expect(
        await podman(['run', '--rm', '--network', 'none', '--entrypoint', 'node', image, '--version']),
        image,
      ).to.equal(pinned);
    }
  });

  it("carry the renderers, runnable as the image's user on a read-only root: ffmpeg, pdftoppm and heif-convert, and soffice in the documents image", async () => {
    // What the renderers run, on what they make: a video's poster and waveform, a PDF's page, an office file's PDF.
    const render = [
      'cd /tmp',
      'ffmpeg -nostdin -v error -f lavfi -i testsrc=duration=2:size=320x240:rate=25 -f lavfi -i sine=duration=2 -shortest clip.mp4',
      'ffmpeg -nostdin -v error -ss 1 -i clip.mp4 -frames:v 1 poster.png',
      'ffmpeg -nostdin -v error -i clip.mp4 -filter_complex showwavespic=s=1024x256 -frames:v 1 waveform.png',
      'printf %s "$PDF_BASE64" | base64 -d > page.pdf',
      'pdftoppm -f 1 -l 1 -scale-to 256 -png page.pdf page',
      'heif-enc -o photo.heic poster.png >/dev/null && heif-convert photo.heic photo.png >/dev/null',
      'prlimit --as=1073741824 --cpu=10 -- true',
      'ls *.png',
    ].join(' && ');
    const inImage = (image: string, script: string) =>
      podman([
        ...['run', '--rm', '--network', 'none', '--read-only', '--tmpfs', '/tmp'],
        ...[
          '--env',
          `PDF_BASE64=${pdf(['A page to render']).toString('base64')}`,
          '--entrypoint',
          'sh',
          image,
          '-c',
          script,
        ],
      ]);
    for (const image of [IMAGES.worker, DOCUMENTS_IMAGE]) {
      expect((await inImage(image, render)).split('\n'), image).to.include.members([
        'poster.png',
        'waveform.png',
        'page-1.png',
        'photo.png',
      ]);
    }
    const office = [
      'cd /tmp',
      'printf "A preview of an office file\\n" > letter.txt',
      'soffice --headless --norestore -env:UserInstallation=file:///tmp/lo --convert-to odt letter.txt >/dev/null',
      'soffice --headless --norestore -env:UserInstallation=file:///tmp/lo --convert-to pdf letter.odt >/dev/null',
      'pdftoppm -f 1 -l 1 -scale-to 256 -png letter.pdf letter',
      'ls letter*',
    ].join(' && ');
    expect((await inImage(DOCUMENTS_IMAGE, office)).split('\n')).to.include.members(['letter.odt', 'letter-1.png']);
    expect(await inImage(IMAGES.worker, 'command -v soffice || echo none')).to.equal('none');
  });

  it('carry the production dependencies only', async () => {
    const listing = await podman([
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'ls',
      IMAGES.api,
      'node_modules',
      'dist',
    ]);
    expect(listing).to.contain('koa').and.contain('bee-queue');
    expect(listing).not.to.match(/^(typescript|mocha|c8|kubernetes-models)$/m);
    expect(listing).not.to.match(/^test$/m);
  });

  it('migrate: creates and migrates the database from a read-only container', async () => {
    const output = await podman([
      'run',
      '--rm',
      ...asInKubernetes,
      ...appEnv({}),
      IMAGES.api,
      'node',
      'dist/core/db/migrate.js',
    ]);
    expect(output).to.match(/^created the database\napplied 0001-create-files/);
  });

  it('start the API and a worker on a read-only root with the shared blob volume, both ready', async () => {
    const [port, adminPort, workerAdminPort] = [await freePort(), await freePort(), await freePort()];
    apiUrl = `http://127.0.0.1:${port}`;
    apiAdmin = `http://127.0.0.1:${adminPort}`;
    workerAdmin = `http://127.0.0.1:${workerAdminPort}`;
    await podman([
      'run',
      '--detach',
      '--name',
      CONTAINERS.api,
      ...asInKubernetes,
      ...appEnv({ PORT: String(port), ADMIN_PORT: String(adminPort) }),
      IMAGES.api,
    ]);
    await podman([
      'run',
      '--detach',
      '--name',
      CONTAINERS.worker,
      ...asInKubernetes,
      ...appEnv({ ADMIN_PORT: String(workerAdminPort) }),
      IMAGES.worker,
    ]);
    await waitForHttp(`${apiAdmin}/readyz`, 200, 30_000).catch(async (err: Error) =>
      Promise.reject(new Error(`${err.message}\n${await podman(['logs', CONTAINERS.api])}`)),
    );
    await waitForHttp(`${workerAdmin}/readyz`, 200, 30_000).catch(async (err: Error) =>
      Promise.reject(new Error(`${err.message}\n${await podman(['logs', CONTAINERS.worker])}`)),
    );
    for (const container of Object.values(CONTAINERS)) {
      expect(
        await podman(['exec', container, 'node', '-e', 'process.stdout.write(String(process.getuid()))']),
        container,
      ).to.equal(UID);
      expect(await podman(['exec', container, 'cat', '/proc/1/comm']), container).to.equal('tini');
    }
  });

  it('process an uploaded file: the smoke test from the API image uploads it and the worker processes it', async () => {
    const output = await podman([
      'run',
      '--rm',
      '--network',
      'host',
      '--read-only',
      '--env',
      `API_URL=${apiUrl}`,
      '--env',
      'SMOKE_TIMEOUT_MS=20000',
      IMAGES.api,
      'node',
      'dist/scripts/smoke.js',
    ]);
    expect(output).to.match(/^uploaded, processed and deleted file [0-9a-f-]{36} through http:\/\/127\.0\.0\.1:\d+$/);
  });

  it('stop on SIGTERM with exit 0 well within the grace period', async () => {
    const start = Date.now();
    await podman(['kill', '--signal', 'SIGTERM', CONTAINERS.api, CONTAINERS.worker]);
    for (const container of Object.values(CONTAINERS)) {
      const exitCode = await podman(['wait', container], GRACE_MS);
      expect(exitCode, `${container} exit code\n${await podman(['logs', '--tail', '5', container])}`).to.equal('0');
    }
    expect(Date.now() - start).to.be.below(GRACE_MS);
    const logs = await podman(['logs', CONTAINERS.worker]);
    expect(logs).to.contain('"signal":"SIGTERM"').and.contain('"msg":"stopped"');
  });
});
