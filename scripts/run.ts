// `make run`: the API and one worker in the foreground. Ctrl-C (or SIGTERM) stops both cleanly. A worker that
// dies is started again after a back-off, as Kubernetes would restart its pod; if the API exits on its own, the
// worker is stopped too and the exit code says so.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const entry = (relative: string) => fileURLToPath(new URL(relative, import.meta.url));
// On one machine, webhooks go to receivers on this machine: plain http and loopback addresses are allowed (unless
// the environment says otherwise); a deployment keeps the defaults, which refuse both.
const localEnv = {
  WEBHOOK_ALLOW_HTTP: 'true',
  WEBHOOK_ALLOW_PRIVATE: 'true',
  ...process.env,
};
// Both processes read ADMIN_PORT; on one machine the worker's comes from WORKER_ADMIN_PORT.
const workerEnv = { ...localEnv, ADMIN_PORT: process.env.WORKER_ADMIN_PORT ?? '9091' };

/** The first restart waits this long, each next one twice as long, up to the maximum. */
const FIRST_BACKOFF_MS = 1_000;
const MAX_BACKOFF_MS = 30_000;
/** A worker that ran this long before dying starts the back-off over. */
const HEALTHY_AFTER_MS = 60_000;

// The children get their own process group, so a terminal's Ctrl-C reaches them once, through us,
// as SIGTERM (a second signal would make them exit without finishing their work).
const start = (script: string, env: NodeJS.ProcessEnv = localEnv) =>
  spawn(process.execPath, [entry(script)], { stdio: 'inherit', detached: true, env });

let exitCode = 0;
let stopping = false;
let restart: NodeJS.Timeout | undefined;
const api = start('../api/main.js');
let worker = start('../worker/main.js', workerEnv);
const children = () => [api, worker];
const running = () => children().filter((child) => child.exitCode === null && child.signalCode === null);

const stopAll = () => {
  stopping = true;
  clearTimeout(restart);
  for (const child of running()) child.kill('SIGTERM');
  if (running().length === 0) process.exit(exitCode);
};

const exitWhenAllStopped = (code: number | null) => {
  if (code) exitCode = code;
  if (running().length === 0) process.exit(exitCode);
};

api.on('exit', (code, signal) => {
  if (stopping) return exitWhenAllStopped(code);
  exitCode = code || 1;
  process.stderr.write(`api/main.js exited (${signal ?? code}); stopping the rest.\n`);
  stopAll();
});

let backoffMs = FIRST_BACKOFF_MS;
function superviseWorker(child: ChildProcess): void {
  const startedAt = Date.now();
  child.on('exit', (code, signal) => {
    if (stopping) return exitWhenAllStopped(code);
    if (Date.now() - startedAt >= HEALTHY_AFTER_MS) backoffMs = FIRST_BACKOFF_MS;
    process.stderr.write(`worker/main.js exited (${signal ?? code}); starting it again in ${backoffMs / 1000} s.\n`);
    restart = setTimeout(() => {
      worker = start('../worker/main.js', workerEnv);
      superviseWorker(worker);
    }, backoffMs);
    backoffMs = Math.min(backoffMs * 2, MAX_BACKOFF_MS);
  });
}
superviseWorker(worker);

process.on('SIGINT', stopAll);
process.on('SIGTERM', stopAll);
// Never leave orphans behind, whatever ends this process.
process.on('exit', () => {
  for (const child of running()) child.kill('SIGKILL');
});
