// `make run`: the API and one worker in the foreground. Ctrl-C (or SIGTERM) stops both cleanly;
// if either exits on its own, the other is stopped too and the exit code says so.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const entry = (relative: string) => fileURLToPath(new URL(relative, import.meta.url));
// Both processes read ADMIN_PORT; on one machine the worker's comes from WORKER_ADMIN_PORT.
const workerEnv = { ...process.env, ADMIN_PORT: process.env.WORKER_ADMIN_PORT ?? '9091' };
// The children get their own process group, so a terminal's Ctrl-C reaches them once, through us,
// as SIGTERM (a second signal would make them exit without finishing their work).
const children: ChildProcess[] = [
  spawn(process.execPath, [entry('../api/main.js')], { stdio: 'inherit', detached: true }),
  spawn(process.execPath, [entry('../worker/main.js')], { stdio: 'inherit', detached: true, env: workerEnv }),
];

const running = () => children.filter((child) => child.exitCode === null && child.signalCode === null);
let exitCode = 0;
let stopping = false;
const stopAll = () => {
  stopping = true;
  for (const child of running()) child.kill('SIGTERM');
};

for (const child of children) {
  child.on('exit', (code, signal) => {
    if (!stopping) {
      exitCode = code || 1;
      process.stderr.write(`${child.spawnargs.at(-1)} exited (${signal ?? code}); stopping the rest.\n`);
      stopAll();
    } else if (code) {
      exitCode = code;
    }
    if (running().length === 0) process.exit(exitCode);
  });
}

process.on('SIGINT', stopAll);
process.on('SIGTERM', stopAll);
// Never leave orphans behind, whatever ends this process.
process.on('exit', () => {
  for (const child of running()) child.kill('SIGKILL');
});
