// GPU kernel times as Prometheus counters, for a process whose GPU records timestamps (GPU_PROFILE=1):
// seconds and dispatches per kernel label, cumulative, so `rate(..._seconds_total[1m]) / rate(steps)` is the
// kernel's time per step. The source is the GPU runtime's profiler (its running totals per label).
import { Counter, type Registry } from 'prom-client';

/** Running totals per kernel label (the GPU runtime's Profiler has this shape). */
export interface KernelTimeSource {
  report(): readonly { readonly label: string; readonly ms: number; readonly count: number }[];
}

/** A counter per label that follows a running total: each scrape adds what it grew by (a reset starts over). */
function followTotals(registry: Registry, name: string, help: string, source: KernelTimeSource, value: (r: { ms: number; count: number }) => number): void {
  const seen = new Map<string, number>();
  new Counter({
    name, help, labelNames: ['kernel'] as const, registers: [registry],
    collect() {
      for (const r of source.report()) {
        const now = value(r), last = seen.get(r.label) ?? 0;
        seen.set(r.label, now);
        const grew = now < last ? now : now - last;
        if (grew > 0) this.inc({ kernel: r.label }, grew);
      }
    },
  });
}

export function registerKernelMetrics(registry: Registry, source: KernelTimeSource): void {
  followTotals(registry, 'latentwire_gpu_kernel_seconds_total', 'GPU time by kernel (timestamp queries; only with GPU_PROFILE=1)', source, (r) => r.ms / 1e3);
  followTotals(registry, 'latentwire_gpu_kernel_dispatches_total', 'Profiled dispatches by kernel (only with GPU_PROFILE=1)', source, (r) => r.count);
}
