// A real S3 server for tests and benchmarks: Ceph's RADOS Gateway (Debian's ceph-mon, ceph-osd and radosgw),
// a throwaway single-host cluster in a temporary directory with every daemon on 127.0.0.1 and free ports.
// The recipe and why each setting is there: ARCHITECTURE.md, "Object storage" (and the team's Ceph note).
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3BlobStore } from '../../core/storage/index.js';
import { eventually } from './eventually.js';
import { freePort } from './net.js';
import { requireProgram } from './tools.js';

export interface Gateway {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  /** The settings a service process needs to use `bucket` on this gateway. */
  env(bucket: string, prefix?: string): Record<string, string>;
  /** A client of the gateway, with the checksum settings Ceph needs. */
  client(): S3Client;
  createBucket(name?: string): Promise<string>;
  /** Stops radosgw alone (the cluster keeps its objects), as an outage of the S3 endpoint. */
  stopGateway(): Promise<void>;
  startGateway(): Promise<void>;
  destroy(): Promise<void>;
}

const RGW_POOLS = [
  '.rgw.root',
  'default.rgw.control',
  'default.rgw.meta',
  'default.rgw.log',
  'default.rgw.buckets.index',
  'default.rgw.buckets.data',
  'default.rgw.buckets.non-ec',
];

// One python process issues every mon command (much faster than one `ceph` call each): an OSD id, then the
// pools radosgw would otherwise create one by one, each written once so its placement groups are active.
const PREPARE_OSD = `
import json, rados, sys
cluster = rados.Rados(conffile=sys.argv[1]); cluster.connect(timeout=20)
ret, out, err = cluster.mon_command(json.dumps({"prefix": "osd new", "uuid": sys.argv[2], "format": "json"}), b"")
if ret: sys.exit("osd new: " + err)
answer = json.loads(out)
print(answer if isinstance(answer, int) else answer["osdid"])
`;
const PREPARE_POOLS = `
import json, rados, sys
cluster = rados.Rados(conffile=sys.argv[1]); cluster.connect(timeout=20)
for pool in sys.argv[2:]:
    for cmd in ({"prefix": "osd pool create", "pool": pool, "pg_num": 8},
                {"prefix": "osd pool application enable", "pool": pool, "app": "rgw"}):
        ret, out, err = cluster.mon_command(json.dumps(cmd), b"")
        if ret: sys.exit(cmd["prefix"] + " " + pool + ": " + err)
for pool in sys.argv[2:]:
    io = cluster.open_ioctx(pool); io.write_full("warm-up", b"x"); io.remove_object("warm-up"); io.close()
`;

const CEPH_PROGRAMS = ['ceph-mon', 'ceph-osd', 'radosgw', 'radosgw-admin', 'monmaptool'];

/** Starts a gateway (about 2 s); skips the calling test when Ceph is not installed, unless in CI. */
export async function startGateway(
  context: Mocha.Context,
  { memoryBytes = 2 * 1024 ** 3 }: { memoryBytes?: number } = {},
): Promise<Gateway> {
  for (const program of CEPH_PROGRAMS) requireProgram(context, program);
  return startCluster(memoryBytes);
}

export async function startCluster(memoryBytes: number): Promise<Gateway> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fp-rgw-'));
  const [monPort, rgwPort] = [await freePort(), await freePort()];
  const conf = path.join(dir, 'ceph.conf');
  const fsid = randomUUID();
  writeFileSync(conf, cephConf({ dir, fsid, monPort, rgwPort, memoryBytes }));
  const ceph = (program: string, args: string[]) =>
    execFileSync(program, ['-c', conf, ...args], { stdio: 'pipe', timeout: 60_000 });
  const python = (script: string, args: string[]) =>
    execFileSync('/usr/bin/python3', ['-c', script, conf, ...args], { stdio: 'pipe', timeout: 60_000 }).toString();

  const daemons: string[] = [];
  const pidFile = (name: string) => path.join(dir, 'run', `${name}.pid`);
  const stopDaemon = async (name: string) => {
    const pid = readPid(pidFile(name), conf);
    if (pid === null) return;
    process.kill(pid, 'SIGTERM');
    await eventually(() => !runningWith(pid, conf), `${name} stopped`, 30_000).catch(() =>
      process.kill(pid, 'SIGKILL'),
    );
  };

  const accessKeyId = 'fptest';
  const secretAccessKey = 'fptestsecret';
  const endpoint = `http://127.0.0.1:${rgwPort}`;
  const startGatewayDaemon = async () => {
    ceph('radosgw', ['-n', 'client.rgw.a']);
    daemons.push('client.rgw.a');
    await eventually(
      async () => {
        // radosgw forks before it binds: a taken port shows only in its log.
        const log = path.join(dir, 'log', 'client.rgw.a.log');
        if (existsSync(log) && readFileSync(log, 'utf8').includes('failed initializing frontend')) {
          throw new Error(`radosgw could not bind ${endpoint}`);
        }
        const answer = await fetch(`${endpoint}/`).catch(() => null);
        return answer !== null && (await answer.text()).includes('ListAllMyBucketsResult');
      },
      `radosgw on ${endpoint}`,
      60_000,
    );
  };

  try {
    mkdirSync(path.join(dir, 'run'));
    mkdirSync(path.join(dir, 'log'));
    mkdirSync(path.join(dir, 'mon'));
    mkdirSync(path.join(dir, 'osd'));
    const monmap = path.join(dir, 'monmap');
    execFileSync('monmaptool', ['--create', '--fsid', fsid, '--addv', 'a', `[v2:127.0.0.1:${monPort}]`, monmap], {
      stdio: 'pipe',
    });
    ceph('ceph-mon', ['-i', 'a', '--mkfs', '--monmap', monmap]);
    ceph('ceph-mon', ['-i', 'a']);
    daemons.push('mon.a');
    const osdUuid = randomUUID();
    const osdId = python(PREPARE_OSD, [osdUuid]).trim();
    mkdirSync(path.join(dir, 'osd', `ceph-${osdId}`));
    ceph('ceph-osd', ['-i', osdId, '--mkfs', '--osd-uuid', osdUuid]);
    ceph('ceph-osd', ['-i', osdId]);
    daemons.push(`osd.${osdId}`);
    python(PREPARE_POOLS, RGW_POOLS);
    await startGatewayDaemon();
    execFileSync(
      'radosgw-admin',
      ['-c', conf, 'user', 'create', '--uid=test', '--display-name=test', `--access-key=${accessKeyId}`],
      { stdio: 'pipe', timeout: 60_000, input: '' },
    );
    execFileSync(
      'radosgw-admin',
      ['-c', conf, 'key', 'create', '--uid=test', `--access-key=${accessKeyId}`, `--secret-key=${secretAccessKey}`],
      { stdio: 'pipe', timeout: 60_000 },
    );
  } catch (err) {
    for (const name of daemons.reverse()) await stopDaemon(name).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }

  const region = 'us-east-1';
  const gateway: Gateway = {
    endpoint,
    region,
    accessKeyId,
    secretAccessKey,
    env: (bucket, prefix = '') => ({
      BLOB_STORE: 's3',
      S3_BUCKET: bucket,
      S3_PREFIX: prefix,
      S3_ENDPOINT: endpoint,
      S3_REGION: region,
      S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: accessKeyId,
      AWS_SECRET_ACCESS_KEY: secretAccessKey,
    }),
    client: () =>
      new S3Client({
        endpoint,
        region,
        forcePathStyle: true,
        credentials: { accessKeyId, secretAccessKey },
        requestChecksumCalculation: 'WHEN_REQUIRED',
        responseChecksumValidation: 'WHEN_REQUIRED',
      }),
    async createBucket(name = `fp-${randomUUID().slice(0, 8)}`) {
      const client = gateway.client();
      try {
        await client.send(new CreateBucketCommand({ Bucket: name }));
      } finally {
        client.destroy();
      }
      return name;
    },
    stopGateway: () => stopDaemon('client.rgw.a'),
    startGateway: startGatewayDaemon,
    async destroy() {
      // radosgw first, then the OSD, then the mon: stopped together, radosgw hangs for two minutes.
      for (const name of [...new Set(daemons)].reverse()) await stopDaemon(name);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return gateway;
}

function cephConf(o: { dir: string; fsid: string; monPort: number; rgwPort: number; memoryBytes: number }): string {
  const { dir } = o;
  return `[global]
fsid = ${o.fsid}
mon host = v2:127.0.0.1:${o.monPort}
public addr = 127.0.0.1
cluster addr = 127.0.0.1
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms client mode = crc secure
ms mon service mode = crc secure
ms service mode = crc secure
ms mon cluster mode = crc secure
ms cluster mode = crc secure
run dir = ${dir}/run
admin socket = ${dir}/run/$cluster-$name.asok
pid file = ${dir}/run/$name.pid
log file = ${dir}/log/$name.log
crash dir = ${dir}/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon warn on pool no redundancy = false
paxos propose interval = 0.01
paxos min wait = 0.01

[mon]
mon data = ${dir}/mon/$cluster-$id

[osd]
osd data = ${dir}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = ${o.memoryBytes}

[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:${o.rgwPort} tcp_nodelay=1
rgw dns name = 127.0.0.1
`;
}

/** The pid in a daemon's pid file when that process still runs with our ceph.conf; null otherwise. */
function readPid(file: string, conf: string): number | null {
  if (!existsSync(file)) return null;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && runningWith(pid, conf) ? pid : null;
}

/** A zombie counts as gone: here PID 1 reaps them late. */
function runningWith(pid: number, conf: string): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    if (/^State:\s+Z/m.test(status)) return false;
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(conf);
  } catch {
    return false;
  }
}

let shared: Promise<Gateway> | undefined;

/**
 * One gateway for every suite of this run that only reads and writes (stopped by the root hooks); without
 * Ceph, `context`'s test is skipped (unless in CI), and with no context it fails.
 */
export function sharedGateway(context?: Mocha.Context): Promise<Gateway> {
  if (context) for (const program of CEPH_PROGRAMS) requireProgram(context, program);
  shared ??= startCluster(4 * 1024 ** 3);
  return shared;
}

export async function stopSharedGateway(): Promise<void> {
  if (shared) await (await shared.catch(() => null))?.destroy();
  shared = undefined;
}

/** A store on a fresh bucket of the gateway (its own prefix too, so keys are not at the bucket's root). */
export async function s3StoreOn(gateway: Gateway, options: { listPageSize?: number } = {}): Promise<S3BlobStore> {
  const bucket = await gateway.createBucket();
  return new S3BlobStore(
    { bucket, prefix: 'files/', endpoint: gateway.endpoint, region: gateway.region, forcePathStyle: true },
    {
      ...options,
      client: { credentials: { accessKeyId: gateway.accessKeyId, secretAccessKey: gateway.secretAccessKey } },
    },
  );
}
