// @ts-check
// handleSummary for every script: the full data as JSON in RESULTS_DIR, and a short text table on stdout.
// Self-contained (no remote jslib import), so a script runs where the load generator has no internet.

/**
 * The parts of k6's end-of-test data this summary reads.
 * @typedef {{ type: 'counter' | 'gauge' | 'rate' | 'trend', contains: 'default' | 'time' | 'data', values: Record<string, number>, thresholds?: Record<string, { ok: boolean }> }} SummaryMetric
 * @typedef {{ name: string, passes: number, fails: number }} SummaryCheck
 * @typedef {{ name: string, checks: SummaryCheck[], groups: SummaryGroup[] }} SummaryGroup
 * @typedef {{ metrics: Record<string, SummaryMetric>, root_group: SummaryGroup, state: { testRunDurationMs: number } }} SummaryData
 */

/**
 * What handleSummary returns: the JSON file and the text for stdout.
 * @param {string} script
 * @param {SummaryData} data
 * @returns {Record<string, string>}
 */
export function summarize(script, data) {
  const dir = (__ENV.RESULTS_DIR || '.').replace(/\/+$/, '');
  return {
    [`${dir}/summary-${script}.json`]: JSON.stringify(data, null, 2),
    stdout: textSummary(script, data),
  };
}

/**
 * @param {string} script
 * @param {SummaryData} data
 */
export function textSummary(script, data) {
  const metrics = Object.entries(data.metrics).sort(([a], [b]) => a.localeCompare(b));
  const failed = metrics.flatMap(([name, metric]) =>
    Object.entries(metric.thresholds || {})
      .filter(([, result]) => !result.ok)
      .map(([expression]) => `${name} ${expression}`),
  );
  const lines = [
    '',
    `${script}: ${(data.state.testRunDurationMs / 1000).toFixed(1)} s, ` +
      (failed.length === 0 ? 'every threshold passed' : `${failed.length} threshold(s) FAILED: ${failed.join('; ')}`),
    '',
  ];
  for (const [name, metric] of metrics) {
    const marks = Object.entries(metric.thresholds || {}).map(
      ([expression, result]) => `${result.ok ? 'ok' : 'FAILED'} ${expression}`,
    );
    lines.push(`  ${name.padEnd(52, ' ')} ${formatValues(metric)}${marks.length ? `   [${marks.join(', ')}]` : ''}`);
  }
  const checks = allChecks(data.root_group);
  if (checks.length) {
    lines.push('', '  checks:');
    for (const { name, passes, fails } of checks)
      lines.push(`    ${fails === 0 ? 'ok    ' : 'FAILED'} ${name}: ${passes} passed, ${fails} failed`);
  }
  return `${lines.join('\n')}\n\n`;
}

/** @param {SummaryGroup} group @returns {SummaryCheck[]} */
function allChecks(group) {
  return [...group.checks, ...group.groups.flatMap(allChecks)];
}

/** @param {SummaryMetric} metric */
function formatValues(metric) {
  const v = metric.values;
  const value = (/** @type {number | undefined} */ x) => (metric.contains === 'time' ? formatMs(x) : formatNumber(x));
  switch (metric.type) {
    case 'trend':
      return ['avg', 'med', 'p(95)', 'p(99)', 'max'].map((stat) => `${stat}=${value(v[stat])}`).join(' ');
    case 'rate':
      return `${((v.rate || 0) * 100).toFixed(2)}% (${v.passes || 0} of ${(v.passes || 0) + (v.fails || 0)})`;
    case 'counter':
      return `${value(v.count)} (${formatNumber(v.rate)}/s)`;
    default:
      return `${value(v.value)}`;
  }
}

/** @param {number | undefined} ms */
function formatMs(ms) {
  if (ms === undefined) return '-';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)}s` : `${ms.toFixed(1)}ms`;
}

/** @param {number | undefined} x */
function formatNumber(x) {
  if (x === undefined) return '-';
  return Number.isInteger(x) ? String(x) : x.toFixed(2);
}
