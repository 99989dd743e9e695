// A parent whose parser process spins forever: the test SIGKILLs this parent and the child must die too.
import { cpuMsOf } from '../../core/procfs.js';
import { ParserProcesses } from '../../worker/parsers.js';
import { ANALYZERS_MODULE, spinForever } from './analyzers.js';

const parsers = new ParserProcesses({ size: 1, maxRssBytes: 256 * 1024 * 1024 });
void parsers
  .run(ANALYZERS_MODULE, spinForever, [], { deadline: Date.now() + 600_000, cpuMs: 600_000 })
  .catch(() => undefined);
// Told once the child is spinning (its CPU time grows), not merely started.
const told = setInterval(() => {
  const pid = parsers.pids()[0];
  if (pid && (cpuMsOf(pid) ?? 0) > 500) {
    process.stdout.write(`child ${pid}\n`);
    clearInterval(told);
  }
}, 100);
