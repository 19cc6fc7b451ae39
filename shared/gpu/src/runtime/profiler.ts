// GPU timestamps per label: each profiled dispatch gets its own compute pass with begin/end timestamp writes
// (per kernel), or each run's one pass does (per run, labelled RUN_PROFILE_LABEL); results are summed per label
// (nanoseconds).
const MAX_QUERIES = 4096;

/** The label of a whole run's time when the profiler times runs (GpuOptions.profile 'runs'). */
export const RUN_PROFILE_LABEL = 'run';

export class Profiler {
  private readonly querySet: GPUQuerySet;
  private readonly resolveBuf: GPUBuffer;
  private readonly readBuf: GPUBuffer;
  private labels: string[] = [];
  readonly totals = new Map<string, { ns: number; count: number }>();

  constructor(private readonly device: GPUDevice) {
    this.querySet = device.createQuerySet({ type: 'timestamp', count: MAX_QUERIES });
    this.resolveBuf = device.createBuffer({ size: MAX_QUERIES * 8, usage: 0x200 | 0x4 }); // QUERY_RESOLVE | COPY_SRC
    this.readBuf = device.createBuffer({ size: MAX_QUERIES * 8, usage: 0x1 | 0x8 });
  }

  /**
   * While true nothing is timed: collecting a run's timestamps waits for the GPU to finish it, which would
   * serialize work meant to overlap (a bench's pipelined decode steps).
   */
  paused = false;

  slot(label: string): GPUComputePassTimestampWrites | undefined {
    if (this.paused || 2 * (this.labels.length + 1) > MAX_QUERIES) return undefined;
    const i = this.labels.length;
    this.labels.push(label);
    return { querySet: this.querySet, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  resolve(encoder: GPUCommandEncoder): void {
    const n = 2 * this.labels.length;
    if (n === 0) return;
    encoder.resolveQuerySet(this.querySet, 0, n, this.resolveBuf, 0);
    encoder.copyBufferToBuffer(this.resolveBuf, 0, this.readBuf, 0, n * 8);
  }

  async collect(): Promise<void> {
    const n = this.labels.length;
    if (n === 0) return;
    await this.readBuf.mapAsync(0x1, 0, n * 16);
    const t = new BigUint64Array(this.readBuf.getMappedRange(0, n * 16).slice(0));
    this.readBuf.unmap();
    this.labels.forEach((label, i) => {
      const ns = Number(t[2 * i + 1]! - t[2 * i]!);
      const cur = this.totals.get(label) ?? { ns: 0, count: 0 };
      cur.ns += ns > 0 && ns < 1e12 ? ns : 0;
      cur.count += 1;
      this.totals.set(label, cur);
    });
    this.labels = [];
  }

  reset(): void {
    this.totals.clear();
  }

  /** Rows sorted by total time, for printing. */
  report(): { label: string; ms: number; count: number }[] {
    return [...this.totals.entries()]
      .map(([label, v]) => ({ label, ms: v.ns / 1e6, count: v.count }))
      .sort((a, b) => b.ms - a.ms);
  }
}
