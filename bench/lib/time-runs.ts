// Kernel timing shared by the single-kernel benches: GPU timestamps summed over the programs' own labels, `runs`
// runs, each the mean over enough back-to-back calls to last ~runMs, after ~WARM_MS of the same work so the
// clocks are up. Needs a Gpu created with { profile: true } on an adapter with timestamp queries.
import { RUN_PROFILE_LABEL, type Gpu, type KernelProgram } from '@latentwire/gpu';
import { spread } from './report.js';

/** GPU busy time before a row's timed runs, so the clocks are up. */
const WARM_MS = 200;
/** The profiler's query set holds this many dispatches a submit. */
const MAX_PROFILED_DISPATCHES = 2000;

export interface TimedRuns {
  /** ms per call of the whole program list: median, fastest and slowest run. */
  readonly med: number;
  readonly min: number;
  readonly max: number;
  /** Calls averaged per run. */
  readonly iters: number;
}

/**
 * `onePass`: every call of a run in one compute pass, timed from its first dispatch's start to its last one's end
 * (as a CUDA graph's replays are timed: the dependent dispatches' gaps counted, no pass around each); else each
 * dispatch in its own timestamped pass, which adds a pass's begin and end to every kernel's time.
 */
export async function timeRuns(gpu: Gpu, programs: readonly KernelProgram[], runs: number, runMs: number, onePass = false): Promise<TimedRuns> {
  const profiler = gpu.profiler;
  if (!profiler) throw new Error('timeRuns: the Gpu has no profiler (create it with { profile: true } on an adapter with timestamp queries)');
  const perKernel = gpu.profilePerKernel;
  gpu.profilePerKernel = !onePass;
  try {
    return await timed(gpu, profiler, programs, runs, runMs, onePass);
  } finally {
    gpu.profilePerKernel = perKernel;
  }
}

async function timed(gpu: Gpu, profiler: NonNullable<Gpu['profiler']>, programs: readonly KernelProgram[], runs: number, runMs: number, onePass: boolean): Promise<TimedRuns> {
  const labels = new Set(onePass ? [RUN_PROFILE_LABEL] : programs.map((p) => p.shader.label));
  let lastByLabel: Map<string, number> | undefined;
  const once = async (iters: number) => {
    profiler.reset();
    await gpu.run(Array.from({ length: iters }, () => programs).flat());
    await gpu.sync();
    const entries = profiler.report().filter((e) => labels.has(e.label));
    if (process.env.BENCH_LABELS === '1') {
      // each kernel's own share of a call (BENCH_LABELS=1), to tell a slow kernel from a slow neighbour
      const by = new Map<string, number>();
      for (const e of entries) by.set(e.label, (by.get(e.label) ?? 0) + e.ms / iters);
      lastByLabel = by;
    }
    return entries.reduce((s, e) => s + e.ms, 0) / iters;
  };
  const probe = await once(1);
  const iters = Math.max(1, Math.min(Math.floor(MAX_PROFILED_DISPATCHES / programs.length), Math.ceil(runMs / Math.max(probe, 1e-3))));
  // the card drops to ~345 MHz while the CPU builds a row's inputs or reference (nvidia-smi on the H200) and takes
  // tens of ms to climb back to 1980: without this warm-up, long rows timed at 1 iteration a run came out up to 5x slow
  const warm = performance.now();
  while (performance.now() - warm < WARM_MS) await once(iters);
  const t: number[] = [];
  for (let r = 0; r < runs; r++) t.push(await once(iters));
  const s = spread(t);
  if (lastByLabel) console.error(`kernels: ${[...lastByLabel].map(([l, ms]) => `${l} ${(ms * 1000).toFixed(2)} µs`).join(', ')}`);
  return { med: s.median, min: s.min, max: s.max, iters };
}
