// `make run`: the API and one worker in the foreground. Ctrl-C (or SIGTERM) stops both cleanly;
// if either exits on its own, the other is stopped too and the exit code says so.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const entry = (relative: string) => fileURLToPath(new URL(relative, import.meta.url));
// Both processes read ADMIN_PORT; on one machine the worker's comes from WORKER_ADMIN_PORT.
const workerEnv = { ...process.env, ADMIN_PORT: process.env.WORKER_ADMIN_PORT ?? '9091' };
const children: ChildProcess[] = [
  spawn(process.execPath, [entry('../api/main.js')], { stdio: 'inherit' }),
  spawn(process.execPath, [entry('../worker/main.js')], { stdio: 'inherit', env: workerEnv }),
];

let exitCode = 0;
let stopping = false;
const stopAll = (signal: NodeJS.Signals) => {
  stopping = true;
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
};

for (const child of children) {
  child.on('exit', (code, signal) => {
    if (!stopping) {
      exitCode = code || 1;
      process.stderr.write(`${child.spawnargs.at(-1)} exited (${signal ?? code}); stopping the rest.\n`);
      stopAll('SIGTERM');
    } else if (code) {
      exitCode = code;
    }
    if (children.every((c) => c.exitCode !== null || c.signalCode !== null)) process.exit(exitCode);
  });
}

// Ctrl-C reaches the whole process group; the children handle it themselves, we only wait for them.
process.on('SIGINT', () => {
  stopping = true;
});
process.on('SIGTERM', () => stopAll('SIGTERM'));
