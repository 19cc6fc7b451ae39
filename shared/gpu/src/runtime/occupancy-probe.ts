// How many of the largest possible workgroups a device runs at once ("full workgroup slots"): what kernels
// size their grids by (enough workgroups to fill the GPU, see chooseDecodeSplits and the matmul tiles)
// instead of a card's SM count written into the code. Measured once per Gpu by timing the probe kernel at a
// growing number of workgroups: the time stays flat while they all fit, and doubles past the slots.
import type { Gpu } from './runtime.js';
import type { KernelProgram } from './program.js';
import { fillWgsl, loadWgsl } from './wgsl-source.js';
import { defineKernel } from './define-kernel.js';
import { bindings } from './bindings.js';

const PROBE_WGSL = loadWgsl(new URL('./occupancy-probe.wgsl', import.meta.url));
const BINDINGS = bindings([['sink', 'array<f32>', 'read_write']], { iters: 'u32' });

const probeShader = defineKernel('occupancy_probe', ({ wg, padVec4s }: { readonly wg: number; readonly padVec4s: number }) => BINDINGS.shader(
  `occupancy_probe_w${wg}_m${padVec4s * 16}`,
  `const WG: u32 = ${wg}u;\nconst PAD: u32 = ${padVec4s}u;\n${fillWgsl(PROBE_WGSL, { BINDINGS: BINDINGS.wgsl })}`,
));

export interface WorkgroupSlots {
  /** Largest workgroups (threads, workgroup memory) that ran at once. */
  readonly slots: number;
  /** The probe's workgroup: invocations and bytes of workgroup memory. */
  readonly workgroupSize: number;
  readonly workgroupBytes: number;
  /** Dispatch time of one workgroup (ms) and the iterations that took. */
  readonly oneMs: number;
  readonly iters: number;
}

/** Times the probe at `count` workgroups: the best of `runs` (wall clock around one submit and its completion). */
async function timeProbe(gpu: Gpu, program: (count: number, iters: number) => KernelProgram, count: number, iters: number, runs = 3): Promise<number> {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    await gpu.run([program(count, iters)]);
    await gpu.sync();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

/** Measures the device's full workgroup slots (about 50–300 ms on a GPU, longer on a software adapter). */
export async function measureWorkgroupSlots(gpu: Gpu, maxSlots = 1 << 14): Promise<WorkgroupSlots> {
  const l = gpu.limits;
  const wg = Math.min(l.maxComputeInvocationsPerWorkgroup, l.maxComputeWorkgroupSizeX, 1024);
  const padVec4s = Math.max(1, Math.floor(l.maxComputeWorkgroupStorageSize / 16));
  const sink = gpu.buffer('occupancy.sink', 16);
  const program = (count: number, iters: number): KernelProgram => ({
    shader: probeShader({ wg, padVec4s }), buffers: BINDINGS.buffers({ sink }), uniformValues: { iters }, workgroups: [count],
  });
  try {
    await timeProbe(gpu, program, 1, 1, 1); // compile
    // long enough that a dispatch's fixed cost (submit, launch, readback) is small beside it
    let iters = 1 << 10;
    let one = await timeProbe(gpu, program, 1, iters);
    while (one < 4 && iters < 1 << 24) {
      iters *= 2;
      one = await timeProbe(gpu, program, 1, iters);
    }
    const fits = async (n: number) => (await timeProbe(gpu, program, n, iters)) < 1.5 * one;
    let lo = 1, hi = 2;
    while (hi <= maxSlots && (await fits(hi))) {
      lo = hi;
      hi *= 2;
    }
    if (hi > maxSlots) return { slots: lo, workgroupSize: wg, workgroupBytes: padVec4s * 16, oneMs: one, iters };
    // lo fits, hi does not: bisect down to about 3%
    while (hi - lo > Math.max(1, lo >> 5)) {
      const mid = (lo + hi) >> 1;
      if (await fits(mid)) lo = mid;
      else hi = mid;
    }
    return { slots: lo, workgroupSize: wg, workgroupBytes: padVec4s * 16, oneMs: one, iters };
  } finally {
    gpu.destroy(sink);
  }
}
