// Which queue each kind of file goes to (QUEUE_ROUTES), and which queues a worker takes jobs from
// (WORKER_QUEUES). One queue mixing kinds has one rate, its slowest kind's: a burst of photos holds
// every text back. Pools give each group of kinds its own queue, workers and autoscaling.
import { FILE_KINDS, type FileKind } from '../fileRecord.js';

export class RouteError extends Error {
  override name = 'RouteError';
}

export interface QueueRoutes {
  /** Every queue a kind is routed to, in the order the rules name them. */
  readonly queues: readonly string[];
  queueOf(kind: FileKind): string;
}

const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Every kind to the one queue `name`: the default, as before pools. */
export function singleQueue(name: string): QueueRoutes {
  return { queues: [name], queueOf: () => name };
}

/**
 * Parses `image,pdf,video,audio=heavy;*=light`: `;`-separated rules `kinds=queue`, where `*` stands for
 * every kind no other rule names. Every kind must end in exactly one queue; empty means `*=<fallback>`.
 */
export function parseQueueRoutes(spec: string, fallback: string): QueueRoutes {
  if (spec.trim() === '') return singleQueue(fallback);
  const byKind = new Map<FileKind, string>();
  const queues: string[] = [];
  let rest: string | undefined;
  for (const rule of spec.split(';').map((part) => part.trim())) {
    if (rule === '') continue;
    const match = /^([^=]+)=(.*)$/.exec(rule);
    const queue = match?.[2]?.trim() ?? '';
    if (!match || !QUEUE_NAME.test(queue)) {
      throw new RouteError(
        `"${rule}" is not a rule "kinds=queue" (a queue name is 1 to 64 letters, digits, ".", "_" or "-").`,
      );
    }
    if (!queues.includes(queue)) queues.push(queue);
    for (const kind of match[1]!.split(',').map((part) => part.trim())) {
      if (kind === '*') {
        if (rest !== undefined) throw new RouteError(`"*" is routed twice (to ${rest} and ${queue}).`);
        rest = queue;
      } else if (!(FILE_KINDS as readonly string[]).includes(kind)) {
        throw new RouteError(`"${kind}" is not a kind (kinds: ${FILE_KINDS.join(', ')}, or * for the rest).`);
      } else if (byKind.has(kind as FileKind)) {
        throw new RouteError(`the kind ${kind} is routed twice (to ${byKind.get(kind as FileKind)} and ${queue}).`);
      } else byKind.set(kind as FileKind, queue);
    }
  }
  const unrouted = FILE_KINDS.filter((kind) => !byKind.has(kind));
  if (rest === undefined && unrouted.length > 0) {
    throw new RouteError(`no queue for the kinds ${unrouted.join(', ')}: name them, or add a rule "*=queue".`);
  }
  for (const kind of unrouted) byKind.set(kind, rest!);
  // A queue whose every kind another rule took is still a queue: a worker may be draining it.
  return { queues, queueOf: (kind) => byKind.get(kind)! };
}

/** A queue a worker takes jobs from, and how many at once. */
export interface ConsumedQueue {
  name: string;
  concurrency: number;
}

/**
 * Parses `heavy=2,light=8` (a concurrency left out is `concurrency`); empty means every routed queue. A worker
 * may name a queue no kind is routed to any more, to drain it after the routes changed.
 */
export function parseWorkerQueues(spec: string, routes: QueueRoutes, concurrency: number): ConsumedQueue[] {
  if (spec.trim() === '') return routes.queues.map((name) => ({ name, concurrency }));
  const consumed: ConsumedQueue[] = [];
  for (const item of spec.split(',').map((part) => part.trim())) {
    if (item === '') continue;
    const match = /^([A-Za-z0-9_.-]{1,64})(?:=(\d{1,3}))?$/.exec(item);
    const own = match?.[2] === undefined ? concurrency : Number(match[2]);
    if (!match || own < 1 || own > 256) {
      throw new RouteError(`"${item}" is not "queue" or "queue=concurrency" (a whole number from 1 to 256).`);
    }
    if (consumed.some((queue) => queue.name === match[1]))
      throw new RouteError(`the queue ${match[1]} is named twice.`);
    consumed.push({ name: match[1]!, concurrency: own });
  }
  if (consumed.length === 0) throw new RouteError('names no queue.');
  return consumed;
}
