import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { createMetrics } from '../core/telemetry/metrics.js';
import { REPOSITORY } from '../scripts/helm.js';
import { dashboard, dashboardQueries } from './support/dashboard.js';
import { requireProgram, run } from './support/tools.js';

const read = (relative: string) => readFileSync(path.join(REPOSITORY, relative), 'utf8');

interface AlertRule {
  alert: string;
  expr: string;
  for?: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

const alertRules = (): AlertRule[] =>
  (parse(read('observability/alerts.yaml')) as { groups: Array<{ rules: AlertRule[] }> }).groups.flatMap(
    (group) => group.rules,
  );

/** Series names a PromQL expression reads: identifiers with an underscore that are neither functions nor labels. */
function seriesIn(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""').replace(/\$__\w+|\$\w+/g, '');
  const identifiers = withoutStrings.match(/[a-zA-Z_:][a-zA-Z0-9_:]*(?=\s*[^\s(a-zA-Z0-9_:]|\s*$)/g) ?? [];
  return identifiers.filter((name) => name.includes('_') && !LABELS.has(name));
}
const LABELS = new Set([
  'namespace',
  'job',
  'instance',
  'route',
  'status',
  'method',
  'kind',
  'outcome',
  'state',
  'reason',
  'le',
]);

/** Every series name the registry of a process exposes (histograms as _bucket, _sum and _count). */
async function exportedSeries(): Promise<Set<string>> {
  // With waiters, as the API's: only a process where requests wait exports http_waiters.
  const metrics = await createMetrics({ waiters: () => 0, scanning: true }).registry.getMetricsAsJSON();
  return new Set(
    metrics.flatMap((metric) =>
      String(metric.type) === 'histogram'
        ? ['_bucket', '_sum', '_count'].map((suffix) => metric.name + suffix)
        : [metric.name],
    ),
  );
}

describe('alerts and dashboard (observability/)', () => {
  it('passes promtool check rules', async function () {
    const promtool = requireProgram(this, 'promtool');
    const { stdout } = await run(promtool, ['check', 'rules', 'observability/alerts.yaml'], { cwd: REPOSITORY });
    expect(stdout).to.match(/SUCCESS: \d+ rules found/);
  });

  it('passes promtool test rules: each alert fires on its trouble and stays quiet on healthy traffic', async function () {
    const promtool = requireProgram(this, 'promtool');
    const { stdout } = await run(promtool, ['test', 'rules', 'observability/alerts.test.yaml'], { cwd: REPOSITORY });
    expect(stdout).to.contain('SUCCESS');
  });

  it('has a unit test for every alert', () => {
    const tested = new Set(
      [...read('observability/alerts.test.yaml').matchAll(/alertname: (\w+)/g)].map((match) => match[1]),
    );
    for (const rule of alertRules()) expect(tested, rule.alert).to.include(rule.alert);
  });

  it('covers 5xx ratio, p99 latency, a growing backlog, job failures, no worker, retries, piling attempts, webhooks and clamd', () => {
    expect(alertRules().map((rule) => rule.alert)).to.include.members([
      'FileProcessorHighErrorRatio',
      'FileProcessorHighLatency',
      'FileProcessorBacklogGrowing',
      'FileProcessorJobFailureRatio',
      'FileProcessorNoWorkerConsuming',
      'FileProcessorJobRetriesHigh',
      'FileProcessorJobAttemptsPilingUp',
      'FileProcessorWebhookOutboxGrowing',
      'FileProcessorWebhookEndpointsFailing',
      'FileProcessorScannerDown',
    ]);
  });

  it('gives every alert a severity, a summary, a description and a runbook section that exists in README.md', () => {
    const readme = read('README.md');
    for (const rule of alertRules()) {
      expect(rule.labels.severity, rule.alert).to.be.oneOf(['critical', 'warning']);
      expect(rule.annotations.summary, rule.alert).to.be.a('string').and.not.equal('');
      expect(rule.annotations.description, rule.alert).to.be.a('string').and.not.equal('');
      const anchor = `alert-${rule.alert.toLowerCase()}`;
      expect(rule.annotations.runbook_url, rule.alert).to.equal(
        `https://github.com/file-processor/file-processor/blob/main/README.md#${anchor}`,
      );
      expect(readme, `README anchor ${anchor}`).to.contain(`<a id="${anchor}"></a>`);
    }
  });

  it('reads only series the service exports, in alerts and dashboard alike', async () => {
    const exported = await exportedSeries();
    const queries = [...alertRules().map((rule) => rule.expr), ...dashboardQueries()];
    const read = new Set(queries.flatMap(seriesIn));
    expect(read.size).to.be.greaterThan(10);
    for (const series of read) expect(exported, `series ${series}`).to.include(series);
  });

  it('is a Grafana dashboard with a data source variable, unique panel ids and a query in every panel', () => {
    const board = dashboard();
    expect(board).to.include({ uid: 'file-processor', title: 'file-processor' });
    expect(board.templating.list.map((variable) => variable.name)).to.include.members([
      'datasource',
      'namespace',
      'job',
      'queue',
    ]);
    const ids = board.panels.map((panel) => panel.id);
    expect(new Set(ids).size).to.equal(ids.length);
    for (const panel of board.panels.filter((p) => p.type !== 'row')) {
      expect(panel.targets, panel.title).to.be.an('array').with.length.above(0);
      for (const target of panel.targets!) expect(target.datasource.uid, panel.title).to.equal('${datasource}');
    }
  });
});
