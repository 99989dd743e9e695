// `make manifests`: renders the chart with its default values into k8s/file-processor.yaml, for kubectl and
// GitOps users (`kubectl apply -k k8s/`). A test renders it again and fails when k8s/ has drifted.
// Usage: node dist/scripts/manifests.js [output file]
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { MANIFESTS, renderChart } from './helm.js';

const HEADER = `# Rendered from charts/file-processor with its default values by \`make manifests\`; do not edit.
# Change the chart (or overlay this with kustomize) instead. The migration Job carries Helm hook annotations,
# which kubectl ignores: it runs once when applied and is deleted a day after it finished.
`;

const output = process.argv[2] ?? MANIFESTS;
writeFileSync(output, HEADER + renderChart({}, ['--skip-tests']));
process.stdout.write(`wrote ${path.relative(process.cwd(), output) || output}\n`);
