// What the kernel accounts for a process, read from /proc (Linux): memory, CPU time and parentage. Each
// reader answers null (or nothing) for a process that is gone, or where there is no /proc.
import { readdirSync, readFileSync } from 'node:fs';

const CLOCK_TICKS_PER_SECOND = 100;

/** The fields of /proc/<pid>/stat after the command name, which may hold spaces and parentheses. */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** Resident memory of a process. */
export function rssBytesOf(pid: number): number | null {
  try {
    const kib = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'))?.[1];
    return kib === undefined ? null : Number(kib) * 1024;
  } catch {
    return null;
  }
}

/** CPU time (user + system) a process has used; with `reaped`, that of its children it has waited for too. */
export function cpuMsOf(pid: number, options: { reaped?: boolean } = {}): number | null {
  const fields = statFields(pid);
  if (!fields) return null;
  const [utime, stime, cutime, cstime] = fields.slice(11, 15).map(Number) as [number, number, number, number];
  return ((utime + stime + (options.reaped ? cutime + cstime : 0)) * 1000) / CLOCK_TICKS_PER_SECOND;
}

interface ProcessEntry {
  pid: number;
  ppid: number;
  startTime: number;
}

/** Every live process (zombies left out). */
function processTable(): ProcessEntry[] {
  const table: ProcessEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const fields = statFields(Number(name));
    // After the command name: state, ppid, ... starttime is the 20th field.
    if (fields && fields[0] !== 'Z')
      table.push({ pid: Number(name), ppid: Number(fields[1]), startTime: Number(fields[19]) });
  }
  return table;
}

/** The live children of `pid`, oldest first. */
export const childrenOf = (pid: number): number[] =>
  processTable()
    .filter((entry) => entry.ppid === pid)
    .sort((a, b) => a.startTime - b.startTime)
    .map((entry) => entry.pid);

/** `pid` and all its live descendants. */
export function processTree(pid: number): number[] {
  const table = processTable();
  const tree = [pid];
  for (let i = 0; i < tree.length; i++)
    tree.push(...table.filter((entry) => entry.ppid === tree[i]).map((entry) => entry.pid));
  return tree;
}

/** CPU time of `pid` and its descendants, alive or reaped: what a worker with its parser processes has used. */
export const treeCpuMsOf = (pid: number): number =>
  processTree(pid).reduce((sum, member) => sum + (cpuMsOf(member, { reaped: true }) ?? 0), 0);
