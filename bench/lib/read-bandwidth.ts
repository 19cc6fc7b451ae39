// The HBM ceiling of the benches, measured on the card they run on: a streaming read of one large buffer
// (bench-kernels' streamRead), timed by GPU timestamps when the device records them, else by the wall clock
// around enough back-to-back reads in one submit that the submit's own cost is small beside them.
import { RUN_PROFILE_LABEL, type Gpu, type KernelProgram } from '@latentwire/gpu';
import { normalFill, streamRead } from './bench-kernels.js';
import { spread } from './report.js';

export interface ReadBandwidth {
  /** Median GB/s over the runs, with the slowest and fastest run. */
  readonly gbps: number; readonly min: number; readonly max: number;
  readonly bytes: number; readonly runs: number;
  readonly timing: 'GPU timestamps' | 'wall clock';
}


/** Seconds one read of the buffer takes, per run: each run repeats the read until it lasts about runMs. */
async function timeReads(gpu: Gpu, program: KernelProgram, runs: number, runMs: number): Promise<number[]> {
  const profiler = gpu.profiler;
  const once = async (iters: number): Promise<number> => {
    profiler?.reset();
    const t0 = performance.now();
    await gpu.run(Array.from({ length: iters }, () => program));
    await gpu.sync();
    const wallMs = performance.now() - t0;
    // a profiler timing runs labels the whole run, which holds only the reads
    const ms = profiler ? profiler.report().filter((e) => e.label === program.shader.label || e.label === RUN_PROFILE_LABEL).reduce((s, e) => s + e.ms, 0) : wallMs;
    return ms / iters / 1e3;
  };
  await once(1); // compiles the pipeline
  const probe = await once(1);
  // the profiler's query set holds 2000 dispatches a submit
  const iters = Math.max(1, Math.min(2000, Math.ceil(runMs / Math.max(probe * 1e3, 1e-3))));
  const t: number[] = [];
  for (let r = 0; r < runs; r++) t.push(await once(iters));
  return t;
}

/** Read bandwidth of the card over one buffer of up to 1 GiB (what a single binding can hold). */
export async function measureReadBandwidth(gpu: Gpu, runs: number, runMs = 100): Promise<ReadBandwidth> {
  const bytes = Math.floor(Math.min(1 << 30, gpu.limits.maxStorageBufferBindingSize, gpu.limits.maxBufferSize) / 4096) * 4096;
  const src = gpu.buffer('stream_src', bytes);
  const sink = gpu.buffer('stream_sink', 16);
  try {
    await gpu.run([normalFill({ buffer: src, count: bytes / 4, first: 0, seed: 1 })]);
    const t = await timeReads(gpu, streamRead(src, sink, bytes), runs, runMs);
    const gb = bytes / 1e9;
    const s = spread(t);
    return {
      gbps: gb / s.median, min: gb / s.max, max: gb / s.min, bytes, runs,
      timing: gpu.profiler ? 'GPU timestamps' : 'wall clock',
    };
  } finally {
    gpu.destroy(src, sink);
  }
}
