// `make manifests`: renders the chart with its default values into k8s/file-processor.yaml, for kubectl and
// GitOps users (`kubectl apply -k k8s/`). A test renders it again and fails when k8s/ has drifted.
// Usage: node dist/scripts/manifests.js [output file]
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { MANIFESTS, renderChart } from './helm.js';

const HEADER = `# Rendered from charts/file-processor with its default values by \`make manifests\`; do not edit.
# Change the chart (or overlay this with kustomize) instead. The migration Job carries Helm hook annotations,
# which kubectl ignores: it runs once when applied and is deleted a day after it finished. The chart's
# uninstall hooks are left out: kubectl would apply them over the migration's Secret and Job, which they name.
`;

/** The rendered documents but Helm's post-delete hooks, which only `helm uninstall` may create. */
function withoutUninstallHooks(rendered: string): string {
  return rendered
    .split(/^(?=---$)/m)
    .filter((document) => {
      const object = parse(document) as { metadata?: { annotations?: Record<string, string> } } | null;
      return object?.metadata?.annotations?.['helm.sh/hook'] !== 'post-delete';
    })
    .join('');
}

const output = process.argv[2] ?? MANIFESTS;
writeFileSync(output, HEADER + withoutUninstallHooks(renderChart({}, ['--skip-tests'])));
process.stdout.write(`wrote ${path.relative(process.cwd(), output) || output}\n`);
