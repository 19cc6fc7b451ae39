// The fused subgroup-matrix GEMM (gemm-mma-fused.ts) against float64 and against the unfused f32 dispatches it
// replaces, on odd sizes: two outputs over two weights (q ‖ kv_a) into strided rows, silu(gate)·up rows, and the
// MoE combine in the epilogue. Its operands are f16 like the plain tensor-core GEMM's, so each output is held to
// MMA_TOL of Σ|terms|. The plan tests (which form runs where) run everywhere; the kernels only where the adapter
// has subgroup matrices. On the GPU machine:
//   cd shared/gpu && node ../../node_modules/ava/entrypoints/cli.mjs dist/test/kernels/matmul-mma-fused.test.js --verbose
import test, { type ExecutionContext } from 'ava';
import { Gpu, subgroupMatrixUnsupportedReason } from '../../src/runtime/index.js';
import { matmulPrograms, type MatmulLimits } from '../../src/kernels/matmul/matmul.js';
import { FUSED_GEMM_MAX_M, fusedGemm, fusedMatmul } from '../../src/kernels/matmul/gemm-mma-fused.js';
import type { FusedGemvArgs } from '../../src/kernels/matmul/gemv-fused.js';
import { siluMul } from '../../src/kernels/silu-mul/silu-mul.js';
import { moeCombine } from '../../src/kernels/moe/index.js';
import type { KernelProgram } from '../../src/runtime/program.js';
import { roundTo, uploadF32, uploadWeight } from '../../src/testing.js';
import { worstRelative } from './matmul.fixture.js';
import { randomArray } from '@latentwire/testing';

const MMA_TOL = 1e-3;

const gpu = await Gpu.create({ adapter: process.env.WEBGPU_ADAPTER, dawnFeatures: ['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia'] });
const why = subgroupMatrixUnsupportedReason(gpu.matrixCapabilities);
const gpuTest = why === null ? test.serial : test.skip;
const skipNote = why === null ? '' : ` (skipped: ${why} on ${gpu.adapterInfo.vendor} ${gpu.adapterInfo.architecture})`;

interface Out { N: number; yStride: number; yOffset: number }

/** Worst |got − want| / mag over every element, asserted below tol. */
function assertClose(t: ExecutionContext, got: Float32Array, want: Float64Array, mag: Float64Array, what: string): number {
  const { worst, where } = worstRelative(got, want, mag);
  t.true(worst < MMA_TOL, `${what}: worst ${worst.toExponential(2)} at ${where} (got ${got[where]}, want ${want[where]})`);
  return worst;
}

/** y (+)= a · Wᵀ in float64 with Σ|terms| (+ |y0|), a given row by row as a function. */
function reference(a: (m: number, k: number) => number, w: Float64Array, y0: Float64Array, M: number, K: number, o: Out, accumulate: boolean) {
  const y = Float64Array.from(y0), mag = new Float64Array(y0.length);
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < o.N; n++) {
      let s = 0, abs = 0;
      for (let k = 0; k < K; k++) {
        const p = a(m, k) * w[n * K + k]!;
        s += p;
        abs += Math.abs(p);
      }
      const yi = o.yOffset + m * o.yStride + n;
      y[yi] = (accumulate ? y0[yi]! : 0) + s;
      mag[yi] = abs + Math.abs(y0[yi]!);
    }
  }
  return { y, mag };
}

const ySize = (M: number, o: Out) => o.yOffset + (M - 1) * o.yStride + o.N + 3;

async function dualCase(t: ExecutionContext, M: number, K: number, o1: Out, o2: Out, accumulate: boolean, seed: number): Promise<number> {
  const xStride = K + 12, xOffset = 8;
  const x = roundTo(randomArray(xOffset + (M - 1) * xStride + K, seed, 2), 'f32');
  const w1 = roundTo(randomArray(o1.N * K, seed + 1, 0.5), 'bf16');
  const w2 = roundTo(randomArray(o2.N * K, seed + 2, 0.5), 'bf16');
  const y10 = roundTo(randomArray(ySize(M, o1), seed + 3, 3), 'f32');
  const y20 = roundTo(randomArray(ySize(M, o2), seed + 4, 3), 'f32');
  const xb = uploadF32(gpu, 'x', x);
  const wb1 = uploadWeight(gpu, 'w1', w1, 'bf16', [o1.N, K]), wb2 = uploadWeight(gpu, 'w2', w2, 'bf16', [o2.N, K]);
  const yb1 = uploadF32(gpu, 'y1', y10), yb2 = uploadF32(gpu, 'y2', y20);
  const args: FusedGemvArgs = {
    x: xb, M, K, xStride, xOffset, accumulate,
    outputs: [{ weight: wb1, y: yb1, ...o1 }, { weight: wb2, y: yb2, ...o2 }],
  };
  const p = fusedGemm(args, gpu.matmulLimits);
  t.truthy(p, 'the fused GEMM takes two outputs');
  t.regex(p!.shader.label, /^matmul_gemm_mma_bf16_.*_dual$|_acc_dual$/);
  await gpu.run([p!]);
  const got1 = await gpu.readF32(yb1, 0, y10.length), got2 = await gpu.readF32(yb2, 0, y20.length);
  // the unfused f32 GEMMs on the same inputs
  gpu.write(yb1, Float32Array.from(y10));
  gpu.write(yb2, Float32Array.from(y20));
  const plain = (wb: typeof wb1, yb: GPUBuffer, o: Out) => matmulPrograms({ x: xb, weight: wb, y: yb, M, N: o.N, K, xStride, xOffset, yStride: o.yStride, yOffset: o.yOffset, accumulate, variant: 'gemm' }, gpu.limits);
  await gpu.run([...plain(wb1, yb1, o1), ...plain(wb2, yb2, o2)]);
  const f1 = await gpu.readF32(yb1, 0, y10.length), f2 = await gpu.readF32(yb2, 0, y20.length);
  const a = (m: number, k: number) => x[xOffset + m * xStride + k]!;
  const r1 = reference(a, w1, y10, M, K, o1, accumulate), r2 = reference(a, w2, y20, M, K, o2, accumulate);
  const what = `M ${M} K ${K} N ${o1.N} + ${o2.N}${accumulate ? ' accumulate' : ''}`;
  const worst = Math.max(
    assertClose(t, got1, r1.y, r1.mag, `${what}: first output`), assertClose(t, got2, r2.y, r2.mag, `${what}: second output`),
  );
  assertClose(t, got1, Float64Array.from(f1), r1.mag, `${what}: first output against the f32 GEMM`);
  assertClose(t, got2, Float64Array.from(f2), r2.mag, `${what}: second output against the f32 GEMM`);
  gpu.destroy(xb, wb1.buffer, wb2.buffer, yb1, yb2);
  return worst;
}

gpuTest(`fused GEMM - two outputs over two weights match float64 and two f32 GEMMs${skipNote}`, async (t) => {
  let worst = 0;
  // q ‖ kv_a at a decode batch: ragged tiles in M and both Ns, a K with a partial slab, strided and offset rows
  worst = Math.max(worst, await dualCase(t, 37, 200, { N: 100, yStride: 100, yOffset: 0 }, { N: 27, yStride: 40, yOffset: 5 }, false, 11));
  worst = Math.max(worst, await dualCase(t, 64, 512, { N: 192, yStride: 200, yOffset: 3 }, { N: 72, yStride: 72, yOffset: 0 }, true, 12));
  // enough column tiles for the largest tile (128 × 128) on a 132-slot device
  worst = Math.max(worst, await dualCase(t, 100, 64, { N: 11300, yStride: 11300, yOffset: 0 }, { N: 130, yStride: 130, yOffset: 0 }, false, 13));
  t.log(`worst error relative to Σ|terms|: ${worst.toExponential(2)}`);
});

gpuTest(`fused GEMM - silu(gate)·up rows, with and without the MoE combine, match float64 and silu·mul, GEMM, combine${skipNote}`, async (t) => {
  let worst = 0;
  for (const [M, K, N, topK] of [[23, 136, 90, 0], [64, 2816, 200, 6], [41, 96, 70, 3]] as const) {
    const seed = M * 31 + K;
    const xStride = 2 * K;
    const x = roundTo(randomArray(M * xStride, seed, 2), 'f32');
    const w = roundTo(randomArray(N * K, seed + 1, 0.5), 'bf16');
    const y0 = roundTo(randomArray(M * N, seed + 2, 3), 'f32');
    const slots = roundTo(randomArray(M * Math.max(topK, 1) * N, seed + 3, 1), 'f32');
    const slotW = roundTo(randomArray(M * Math.max(topK, 1), seed + 4, 1), 'f32');
    const xb = uploadF32(gpu, 'x', x), wb = uploadWeight(gpu, 'w', w, 'bf16', [N, K]), yb = uploadF32(gpu, 'y', y0);
    const sb = uploadF32(gpu, 'slots', slots), swb = uploadF32(gpu, 'slot_w', slotW);
    const combine = topK > 0 ? { slotOut: sb, weights: swb, topK } : undefined;
    const p = fusedGemm({ x: xb, M, K, silu: true, outputs: [{ weight: wb, y: yb, N }], accumulate: true, ...(combine ? { combine } : {}) }, gpu.matmulLimits);
    t.truthy(p, `M ${M} K ${K}: the fused GEMM takes silu${combine ? ' + combine' : ''}`);
    await gpu.run([p!]);
    const got = await gpu.readF32(yb, 0, y0.length);
    // unfused: silu·mul, the f32 GEMM accumulating, then the combine
    gpu.write(yb, Float32Array.from(y0));
    const act = gpu.buffer('act', M * K * 4);
    const unfused: KernelProgram[] = [
      siluMul({ gate: xb, y: act, rows: M, cols: K }),
      ...matmulPrograms({ x: act, weight: wb, y: yb, M, N, K, accumulate: true, variant: 'gemm' }, gpu.limits),
      ...(combine ? [moeCombine({ slotOut: sb, topkWeights: swb, out: yb, tokens: M, topK, hidden: N, accumulate: true })] : []),
    ];
    await gpu.run(unfused);
    const f32 = await gpu.readF32(yb, 0, y0.length);
    const silu = (v: number) => v / (1 + Math.exp(-v));
    const a = (m: number, k: number) => silu(x[m * xStride + k]!) * x[m * xStride + K + k]!;
    const r = reference(a, w, y0, M, K, { N, yStride: N, yOffset: 0 }, true);
    if (combine) {
      for (let m = 0; m < M; m++) {
        for (let n = 0; n < N; n++) {
          for (let j = 0; j < topK; j++) {
            const term = slotW[m * topK + j]! * slots[(m * topK + j) * N + n]!;
            r.y[m * N + n] += term;
            r.mag[m * N + n] += Math.abs(term);
          }
        }
      }
    }
    const what = `M ${M} K ${K} N ${N}${combine ? ` combine ${topK}` : ''}`;
    worst = Math.max(worst, assertClose(t, got, r.y, r.mag, what));
    assertClose(t, got, Float64Array.from(f32), r.mag, `${what} against the unfused f32 dispatches`);
    gpu.destroy(xb, wb.buffer, yb, sb, swb, act);
  }
  t.log(`worst error relative to Σ|terms|: ${worst.toExponential(2)}`);
});

test('fused GEMM - where it applies: subgroup matrices, decode-sized M, something to fuse, a K it can run unsplit', (t) => {
  // H100/H200-like limits on real (unused) buffers: only the plans are computed
  const lim: MatmulLimits = { ...gpu.matmulLimits, maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, subgroupMatrix: true, workgroupSlots: 132 };
  const K = 2048;
  const x = gpu.buffer('x', 129 * 2 * 10944 * 4), y = gpu.buffer('y', 129 * 3072 * 4), y2 = gpu.buffer('y2', 129 * 576 * 4);
  const w = (N: number, k = K) => ({ buffer: gpu.buffer('w', N * k * 2), dtype: 'bf16' as const, shape: [N, k] });
  const q = w(3072), kv = w(576), down = w(2048, 10944), sdown = w(2048, 2816);
  const dual = (M: number, l: MatmulLimits = lim) => fusedMatmul({ x, M, K, outputs: [{ weight: q, y, N: 3072 }, { weight: kv, y: y2, N: 576 }] }, l);
  t.regex(dual(1)!.shader.label, /^matmul_gemv_/, 'one row: the fused GEMV');
  t.is(dual(64)!.shader.label, 'matmul_gemm_mma_bf16_32x64k128_dual', 'batch 64: one GEMM over both weights');
  t.deepEqual(dual(64)!.workgroups, [48 + 9, 2]);
  t.is(dual(FUSED_GEMM_MAX_M + 1), null, 'past decode batches: the unfused GEMMs');
  t.is(dual(64, { ...lim, subgroupMatrix: false }), null, 'no subgroup matrices: the unfused GEMMs');
  t.is(dual(64, { ...lim, fusedGemm: false }), null, 'MATMUL_FUSED_GEMM=false: the unfused GEMMs');
  t.is(fusedGemm({ x, M: 64, K, outputs: [{ weight: q, y, N: 3072 }] }), null, 'nothing to fuse');
  t.is(fusedGemm({ x, M: 64, K, norm: { weight: { buffer: y2, dtype: 'f32', shape: [K] }, eps: 1e-6 }, outputs: [{ weight: q, y, N: 3072 }, { weight: kv, y: y2, N: 576 }] }, lim), null, 'the norm stays a dispatch');
  // the shared experts' down with the combine runs unsplit (22 trips); a dense down of 86 trips keeps its split
  const slotOut = gpu.buffer('slots', 64 * 6 * 2048 * 4), slotW = gpu.buffer('slot_w', 64 * 6 * 4);
  t.is(fusedMatmul({ x, M: 64, K: 2816, silu: true, outputs: [{ weight: sdown, y, N: 2048 }], accumulate: true, combine: { slotOut, weights: slotW, topK: 6 } }, lim)!.shader.label,
    'matmul_gemm_mma_bf16_32x64k128_acc_silu_combine_k6');
  t.is(fusedMatmul({ x, M: 64, K: 10944, silu: true, outputs: [{ weight: down, y, N: 2048 }], accumulate: true }, lim), null);
  t.throws(() => fusedGemm({ x, M: 64, K: 2816, silu: true, outputs: [{ weight: sdown, y, N: 2048 }], combine: { slotOut, weights: slotW, topK: 6 } }, lim), { instanceOf: RangeError, message: /accumulated/ });
  gpu.destroy(x, y, y2, q.buffer, kv.buffer, down.buffer, sdown.buffer, slotOut, slotW);
});
