// External programs a test needs (Debian's `prometheus` package: prometheus, promtool; Ceph's for the S3
// gateway: ceph-mon, ceph-osd, radosgw, radosgw-admin, monmaptool; `chromium` for the browser test; LibreOffice's
// `soffice`, which makes the office documents of the document tests; ffmpeg, tar, zstd, bzip2 and xz to make the
// richer-results tests' media and archives; poppler-utils and util-linux's prlimit for the renderings). Missing on a
// developer machine, the test is skipped with a message saying how to get them; missing in CI
// (inCI()), it fails, so a green CI always ran it.
import { execFile } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';

/** The Debian packages of each program a test may need, other than Ceph's. */
const PACKAGES: Record<string, string> = {
  chromium: 'chromium',
  soffice: 'libreoffice-writer-nogui libreoffice-calc-nogui libreoffice-impress-nogui',
  ffmpeg: 'ffmpeg',
  tar: 'tar',
  zstd: 'zstd',
  bzip2: 'bzip2',
  xz: 'xz-utils',
  pdftoppm: 'poppler-utils',
  pdftocairo: 'poppler-utils',
  prlimit: 'util-linux',
  'heif-enc': 'libheif-examples',
  'heif-convert': 'libheif-examples',
};

const installHint = (name: string) =>
  name.startsWith('prom')
    ? 'apt-get install -y prometheus'
    : `apt-get install -y --no-install-recommends ${PACKAGES[name] ?? 'ceph-mon ceph-osd radosgw'}`;

/**
 * True in CI, which .ci/run marks with CI=true (as most CI services do). The one rule for skipping: a test whose
 * prerequisite is missing (a program, root, a file of the repository) skips on a developer machine and fails in
 * CI, so a green CI ran every test.
 */
export const inCI = (): boolean => process.env.CI === 'true';

/** The program's path on PATH, or null. */
export function findProgram(name: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return null;
}

/** The program's path; skips the calling test (or suite) when it is missing, unless in CI. */
export function requireProgram(context: Mocha.Context, name: string): string {
  const found = findProgram(name);
  if (found) return found;
  if (inCI())
    throw new Error(`${name} is not installed, and CI must run this test: ${installHint(name)} (see .ci/run).`);
  process.stderr.write(`      skipped: ${name} is not installed (${installHint(name)})\n`);
  context.skip();
}

export const run = promisify(execFile);
