// What the sections that compare the service with a tool alone, in alternating rounds, share.
import { cpuMsOf } from '../../core/procfs.js';

export const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

/** The round whose figure is the median one. */
export function medianBy<T>(rounds: T[], figure: (round: T) => number): T {
  const middle = median(rounds.map(figure));
  return rounds.find((round) => figure(round) === middle)!;
}

/** CPU time of this process's children it has waited for (a tool's processes, once exited). */
export const reapedChildrenCpuMs = (): number =>
  (cpuMsOf(process.pid, { reaped: true }) ?? 0) - (cpuMsOf(process.pid) ?? 0);

/** POSTs JSON and resolves with the answer, which must be 202 (a bulk reprocess). */
export async function postJson(url: string, body: unknown): Promise<unknown> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (response.status !== 202) throw new Error(`${url} answered ${response.status}: ${await response.text()}`);
  return response.json();
}
