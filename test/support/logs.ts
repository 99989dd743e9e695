// The service's real logger, writing its JSON lines into memory so a test can read them.
import { createLogger, type Logger } from '../../core/telemetry/logger.js';

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export interface CapturedLogs {
  logger: Logger;
  /** Every line so far, parsed; the raw text is kept for "never appears" checks. */
  lines(): LogLine[];
  text(): string;
}

/** The JSON log lines of `text` (a process's output, say), parsed; other lines are left out. */
export function parseLogLines(text: string): LogLine[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

export function captureLogs(level = 'info'): CapturedLogs {
  let text = '';
  const logger = createLogger({ level, name: 'test', destination: { write: (line: string) => void (text += line) } });
  return {
    logger,
    text: () => text,
    lines: () => parseLogLines(text),
  };
}
