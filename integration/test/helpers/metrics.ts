// Reading a service's Prometheus registry in tests, as a scrape would.
import type { Registry } from 'prom-client';

/** The samples of a metric (a histogram's _count/_sum by their own names), summed over registries and matching labels. */
export async function sum(registries: Registry | readonly Registry[], name: string, labels: Record<string, string> = {}): Promise<number> {
  let total = 0;
  for (const r of Array.isArray(registries) ? registries : [registries as Registry]) {
    const metric = r.getSingleMetric(name.replace(/_(count|sum)$/, ''));
    if (!metric) throw new Error(`no metric ${name}`);
    const m = await metric.get();
    for (const v of m.values) {
      const own = (v as { metricName?: string }).metricName ?? m.name;
      if (own === name && Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x)) total += v.value;
    }
  }
  return total;
}
