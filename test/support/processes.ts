// Real processes of the service, started from the build, for end-to-end tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { childEnv } from './env.js';

export { freePort, waitForHttp } from './net.js';

export const entry = (relative: string) => fileURLToPath(new URL(`../../../${relative}`, import.meta.url));

export interface Started {
  child: ChildProcess;
  output: () => string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
}

const started = new Set<ChildProcess>();

/** Kills every process a test started and left running (a failed or timed-out test). */
export function killStartedProcesses(): void {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export function startProcess(script: string, env: Record<string, string> = {}, options: { detached?: boolean } = {}): Started {
  const child = spawn(process.execPath, [entry(script)], { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'], detached: options.detached ?? false });
  started.add(child);
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  return { child, output: () => output, exited };
}

/** Runs a script to completion. */
export async function runProcess(script: string, env: Record<string, string> = {}): Promise<{ code: number | string; output: string }> {
  const started = startProcess(script, env);
  const code = await started.exited;
  return { code, output: started.output() };
}
