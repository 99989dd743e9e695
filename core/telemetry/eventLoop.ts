// Is the event loop keeping up? A heartbeat timer measures how late each of its ticks fires; /healthz
// reads the worst delay of the last few seconds. A loop that is blocked right now cannot answer at all:
// the liveness probe's own timeout catches that case, this catches a loop that keeps stalling.
import { performance } from 'node:perf_hooks';

export interface EventLoopWatch {
  /** The longest event-loop stall seen in the window, in milliseconds (including the current one). */
  worstDelayMs(): number;
  /** False when that stall exceeded the threshold: the process is wedged. */
  healthy(): boolean;
  stop(): void;
}

export interface EventLoopWatchOptions {
  /** Longest tolerated stall; 0 never reports unhealthy. */
  maxDelayMs: number;
  /** How far back stalls count. */
  windowMs?: number;
  /** Heartbeat period. */
  intervalMs?: number;
}

export function watchEventLoop(options: EventLoopWatchOptions): EventLoopWatch {
  // Turned off: no heartbeat at all, and never unhealthy.
  if (options.maxDelayMs === 0) return { worstDelayMs: () => 0, healthy: () => true, stop: () => undefined };
  const intervalMs = options.intervalMs ?? 250;
  const delays = new Array<number>(Math.max(1, Math.ceil((options.windowMs ?? 10_000) / intervalMs))).fill(0);
  let next = 0;
  let lastTick = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    delays[next] = Math.max(0, now - lastTick - intervalMs);
    next = (next + 1) % delays.length;
    lastTick = now;
  }, intervalMs);
  // The heartbeat must not keep a process alive that is otherwise done.
  timer.unref();

  const worstDelayMs = () => Math.max(performance.now() - lastTick - intervalMs, ...delays);
  return {
    worstDelayMs,
    healthy: () => worstDelayMs() <= options.maxDelayMs,
    stop: () => clearInterval(timer),
  };
}
