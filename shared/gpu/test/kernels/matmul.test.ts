import test from 'ava';
import { GEMM_TILES, matmul, matmulPlan, matmulPrograms, type GemmTileName, type MatmulArgs } from '../../src/kernels/matmul/matmul.js';
import type { GpuTensor, WeightDtype } from '../../src/kernels/weight-dtype.js';
import { testGpu } from '../../src/testing.js';
import { check } from './matmul.fixture.js';

const DTYPES: readonly WeightDtype[] = ['bf16', 'f16', 'f32'];
const SHAPES = [
  { N: 77, K: 45 }, // odd K: scalar weight path
  { N: 200, K: 333 }, // odd K, several K tiles
  { N: 72, K: 256 }, // aligned: vectorized paths
];

// Dtype, alignment paths, GEMV row block (MB, from M), tile and accumulate are compile-time, so each distinct
// combination is one shader compile — seconds to a minute each through lavapipe's LLVM, and the bulk of this
// file's time. Each combination is exercised once; sizes, strides and offsets (uniforms) vary freely.
// Here: GEMV with MB 1 and 16, GEMM (auto tile) at M below and above the GEMV range, every dtype, with the
// scalar (odd K) and vector (aligned) paths. MB 2, 4 and 8 come in the strided tests and the long-K test.
for (const dtype of DTYPES) {
  for (const M of [1, 13, 130]) {
    for (const variant of M <= 16 ? (['gemv', 'gemm'] as const) : (['gemm'] as const)) {
      test(`matmul - ${variant} ${dtype} M=${M} matches float64 on odd shapes`, async (t) => {
        const gpu = await testGpu();
        for (const s of SHAPES) await check(t, gpu, { M, ...s, dtype, variant });
      });
    }
  }
}

// Every tile once, each with another dtype (the dtypes' load paths are covered above), ragged in every
// dimension with aligned and odd K; one tile also as a custom tile with the K loop kept as a loop.
const TILE_DTYPES: Record<GemmTileName, WeightDtype> = { t128x128: 'bf16', t64x64: 'f16', t32x64: 'f32' };
for (const tile of Object.keys(GEMM_TILES) as GemmTileName[]) {
  test(`matmul - gemm tile ${tile} (${TILE_DTYPES[tile]}) on ragged edges`, async (t) => {
    const gpu = await testGpu();
    const T = GEMM_TILES[tile], dtype = TILE_DTYPES[tile];
    // one full tile plus a ragged one in every dimension
    await check(t, gpu, { M: T.BM + 5, N: T.BN + 3, K: 2 * T.BK + 8, dtype, variant: 'gemm', tile });
    await check(t, gpu, { M: T.BM - 1, N: T.BN + 9, K: 3 * T.BK + 1, dtype, variant: 'gemm', tile });
    if (tile === 't64x64') {
      // the same shape as a custom tile with the K loop kept as a loop
      await check(t, gpu, { M: T.BM + 2, N: T.BN - 3, K: 2 * T.BK + 4, dtype, variant: 'gemm', tile: { ...T, unrollK: false } });
    }
  });
}

// GEMV row blocks 2, 4 and 8 (M 2, 3, 5; R2 1 and 2), one per dtype; GEMM at two M that share a tile.
const STRIDED_M: Record<'gemv' | 'gemm', Record<WeightDtype, readonly number[]>> = {
  gemv: { bf16: [2], f16: [3], f32: [5] },
  gemm: { bf16: [9, 67], f16: [9], f32: [67] },
};
for (const variant of ['gemv', 'gemm'] as const) {
  for (const dtype of DTYPES) {
    for (const M of STRIDED_M[variant][dtype]) {
      test(`matmul - ${variant} ${dtype} M=${M} strided x, y column slice, stacked weight offset, accumulate`, async (t) => {
        const gpu = await testGpu();
        // x rows strided with an offset; y written into columns [11, 11 + N) of 150-wide rows
        await check(t, gpu, { M, N: 77, K: 45, dtype, variant, xStride: 52, xOffset: 6, yStride: 150, yOffset: 11 });
        // aligned strides keep the vector paths
        await check(t, gpu, { M, N: 100, K: 128, dtype, variant, xStride: 136, xOffset: 8, yStride: 120, yOffset: 16 });
        // misaligned x with an aligned weight: scalar x, vector weights
        await check(t, gpu, { M, N: 40, K: 64, dtype, variant, xStride: 67, xOffset: 1 });
        // expert 3 of a stack of [N, K] experts (offset not a multiple of the 256-byte binding alignment)
        await check(t, gpu, { M, N: 33, K: 72, dtype, variant, before: 3 * 33 });
        // an offset that is even but not a multiple of 8: scalar weight path
        await check(t, gpu, { M, N: 33, K: 72, dtype, variant, before: 2, extra: 2 });
        // accumulate into strided y (fused residual add)
        await check(t, gpu, { M, N: 90, K: 96, dtype, variant, yStride: 100, yOffset: 4, accumulate: true });
        await check(t, gpu, { M, N: 31, K: 45, dtype, variant, accumulate: true, before: 2 });
      });
    }
  }
}

test('matmul - long K runs the unrolled GEMV loop and many GEMM K steps', async (t) => {
  const gpu = await testGpu();
  // row blocks 1, 2 and 16, whose aligned bf16 shaders the tests above already compiled
  for (const M of [1, 2, 11]) await check(t, gpu, { M, N: 40, K: 2056, dtype: 'bf16', variant: 'gemv' });
  await check(t, gpu, { M: 20, N: 70, K: 2056, dtype: 'bf16', variant: 'gemm' });
});

// Split-K: each K range its own workgroups (grid z), the partial products summed into y by a second dispatch.
// One tile (32 × 64, 32-deep slabs), the vector and scalar load paths, both reduce forms.
test('matmul - split-K matches float64: K ranges with a short last one, odd K, accumulate into strided y', async (t) => {
  const gpu = await testGpu();
  const tile = 't32x64' as const;
  // K = 200 is 7 slabs of 32: 2 splits of 128 + 72, 3 of 96 + 96 + 8, 7 of one slab each
  for (const splits of [2, 3, 7]) await check(t, gpu, { M: 37, N: 70, K: 200, dtype: 'bf16', variant: 'gemm', tile, splits });
  await check(t, gpu, { M: 37, N: 70, K: 200, dtype: 'bf16', variant: 'gemm', tile, splits: 3, yStride: 80, yOffset: 6, accumulate: true });
  // odd K: scalar x and weight loads, the tail inside the last split
  await check(t, gpu, { M: 20, N: 33, K: 45, dtype: 'bf16', variant: 'gemm', tile, splits: 2 });
  // one split is the plain GEMM (one dispatch)
  await check(t, gpu, { M: 20, N: 33, K: 45, dtype: 'bf16', variant: 'gemm', tile, splits: 1 });
});

test('matmul - split-K by default only where the tiles leave slots idle, within MATMUL_SPLIT_K_MAX, the scratch and 4 slabs a split', async (t) => {
  const gpu = await testGpu();
  const w: GpuTensor = { buffer: gpu.buffer('w', 4096 * 2048 * 2), dtype: 'bf16', shape: [4096, 2048] };
  const x = gpu.buffer('x', 64 * 2048 * 4), y = gpu.buffer('y', 64 * 4096 * 4);
  const big = gpu.buffer('split_k', 64 * 4096 * 4 * 8);
  const limits = { ...gpu.limits, workgroupSlots: 132, splitKMax: 8 };
  const split = (over: Partial<MatmulArgs>, lim: typeof limits = limits) => {
    const p = matmulPlan({ x, y, weight: w, M: 64, N: 2048, K: 2048, variant: 'gemm', tile: 't32x64', splitK: { scratch: big }, ...over }, lim);
    if (p.variant === 'gemv') throw new Error('not a GEMM');
    return p.split;
  };
  // 2 × 32 tiles = 64 workgroups of 132 slots; 64 slabs of 32: ceil(264 / 64) = 5 splits of 13 slabs (the last 12)
  t.deepEqual(split({}), { splits: 5, kSplit: 13 * 32 });
  t.deepEqual(split({}, { ...limits, splitKMax: 2 }), { splits: 2, kSplit: 1024 });
  t.deepEqual(split({}, { ...limits, splitKMax: 1 }), { splits: 1, kSplit: 2048 });
  t.deepEqual(split({ splitK: undefined }), { splits: 1, kSplit: 2048 });
  // tiles that fill 2/3 of the slots: no split
  t.deepEqual(split({ N: 4096, M: 64 * 1 }, { ...limits, workgroupSlots: 96 }), { splits: 1, kSplit: 2048 });
  // at least 4 slabs a split: K = 256 is 8 slabs, 2 splits
  t.deepEqual(split({ K: 256, weight: { ...w, shape: [4096 * 8, 256] } }), { splits: 2, kSplit: 128 });
  // the scratch's room: 3 splits of 64 × 2048 f32
  t.deepEqual(split({ splitK: { scratch: gpu.buffer('small', 3 * 64 * 2048 * 4 + 100) } }), { splits: 3, kSplit: 22 * 32 });
  // asked for: taken as asked, and refused beyond the slabs or the scratch
  t.deepEqual(split({ splitK: { scratch: big, splits: 16 } }), { splits: 16, kSplit: 128 });
  t.throws(() => split({ splitK: { scratch: big, splits: 65 } }), { instanceOf: RangeError, message: /splitK\.splits 65 exceeds the 64 K slabs/ });
  t.throws(() => split({ splitK: { scratch: x, splits: 2 } }), { instanceOf: RangeError, message: /splitK scratch .* holds 1 splits/ });
  t.throws(() => split({ splitK: { scratch: big, splits: 0 } }), { instanceOf: RangeError, message: /splitK\.splits/ });
  t.throws(() => matmulPrograms({ x, y, weight: w, M: 64, N: 2048, K: 2048, splitK: { scratch: y } }, limits), { instanceOf: RangeError, message: /scratch must be a buffer of its own/ });
  // the GEMV never splits
  t.is(matmulPrograms({ x, y, weight: w, M: 4, N: 2048, K: 2048, splitK: { scratch: big } }, limits).length, 1);
  gpu.destroy(w.buffer, x, y, big);
});

test('matmul - auto picks GEMV for small M and GEMM for large M', async (t) => {
  const gpu = await testGpu();
  const w: GpuTensor = { buffer: gpu.buffer('w', 64 * 64 * 2), dtype: 'bf16', shape: [64, 64] };
  const x = gpu.buffer('x', 200 * 64 * 4), y = gpu.buffer('y', 200 * 64 * 4);
  const plan = (M: number) => matmulPlan({ x, y, weight: w, M, N: 64, K: 64 }, gpu.limits);
  t.is(plan(1).variant, 'gemv');
  t.is(plan(16).variant, 'gemv');
  t.is(plan(17).variant, 'gemm');
  t.is(plan(200).variant, 'gemm');
  t.true(plan(1).align.vecW && plan(1).align.vecX);
  t.throws(() => matmulPlan({ x, y, weight: w, M: 17, N: 64, K: 64, variant: 'gemv' }, gpu.limits), { instanceOf: RangeError });
  // every program compiles and runs with the device's limits and with WebGPU's default limits
  await gpu.run([matmul({ x, y, weight: w, M: 200, N: 64, K: 64 }), matmul({ x, y, weight: w, M: 2, N: 64, K: 64 })]);
  await gpu.sync();
  gpu.destroy(w.buffer, x, y);
});

test('matmul - rejects bad arguments with RangeErrors naming them', async (t) => {
  const gpu = await testGpu();
  const w: GpuTensor = { buffer: gpu.buffer('w', 10 * 16 * 2), dtype: 'bf16', shape: [10, 16] };
  const x = gpu.buffer('x', 4 * 16 * 4), y = gpu.buffer('y', 4 * 10 * 4);
  const base: MatmulArgs = { x, y, weight: w, M: 4, N: 10, K: 16 };
  const bad = (over: Partial<MatmulArgs>, word: RegExp) =>
    t.throws(() => matmul({ ...base, ...over }, gpu.limits), { instanceOf: RangeError, message: word });
  t.notThrows(() => matmul(base, gpu.limits));
  bad({ M: 0 }, /\bM\b/);
  bad({ N: 1.5 }, /\bN\b/);
  bad({ K: -1 }, /\bK\b/);
  bad({ K: 8 }, /\bK\b/); // does not match the weight's last dimension
  bad({ N: 11 }, /\bN\b/); // more rows than the weight has
  bad({ weightOffset: 1 }, /weightOffset/); // odd offset into packed bf16
  bad({ weightOffset: 2 }, /weightOffset/); // runs past the end
  bad({ xStride: 15 }, /xStride/);
  bad({ xOffset: -2 }, /xOffset/);
  bad({ yStride: 9 }, /yStride/);
  bad({ yOffset: 0.5 }, /yOffset/);
  bad({ xOffset: 16 }, /\bx buffer/);
  bad({ yStride: 20 }, /\by buffer/);
  bad({ y: x }, /different buffers/);
  bad({ weight: { ...w, buffer: gpu.buffer('small', 64) } }, /weight buffer/);
  bad({ weight: { ...w, dtype: 'i8' as WeightDtype } }, /dtype/);
  bad({ variant: 'gemm', tile: 'nope' as GemmTileName }, /tile/);
  gpu.destroy(w.buffer, x, y);
});
