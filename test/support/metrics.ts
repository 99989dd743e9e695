// Reads one series from a registry, the way Prometheus would see it after a scrape.
import type { Registry } from 'prom-client';

/**
 * The value of `series` (a metric name, or a histogram's `_bucket`/`_count`/`_sum`), summed over
 * the samples whose labels include `labels`.
 */
export async function seriesValue(
  registry: Registry,
  series: string,
  labels: Record<string, string> = {},
): Promise<number> {
  let total = 0;
  for (const metric of await registry.getMetricsAsJSON()) {
    for (const sample of metric.values as Array<{
      value: number;
      labels: Record<string, string | number>;
      metricName?: string;
    }>) {
      const name = sample.metricName ?? metric.name;
      if (name === series && Object.entries(labels).every(([key, value]) => String(sample.labels[key]) === value))
        total += sample.value;
    }
  }
  return total;
}
