// The subgroup-matrix (tensor-core) GEMM against the float64 reference and against the f32 GEMM on the same
// inputs: every tile and weight dtype, ragged M, N and K tails, strided x and y, a stacked-expert weight
// offset and the accumulate form. Its operands are f16 (x rounded once, weights converted), so each output is
// held to MMA_TOL of Σ|x·w| over its terms instead of the f32 kernels' 1e-5.
//
// Runs only where the adapter has subgroup matrices; elsewhere (lavapipe in CI) the tests are skipped with the
// reason in their title. On the GPU machine (NVIDIA; the Dawn toggles are set by the test itself):
//   cd shared/gpu && node ../../node_modules/ava/entrypoints/cli.mjs dist/test/kernels/matmul-mma.test.js --verbose
import test from 'ava';
import { subgroupMatrixUnsupportedReason } from '../../src/runtime/index.js';
import { MMA_TILES, matmulPlan, matmulPrograms, type MmaTileName } from '../../src/kernels/matmul/matmul.js';
import { packWeights } from '@latentwire/model';
import { randomArray } from '@latentwire/testing';
import { roundTo, tensorCoreTestGpu, uploadF32, uploadWeight } from '../../src/testing.js';
import type { GpuTensor, WeightDtype } from '../../src/kernels/weight-dtype.js';
import { check, matmulRef, type Case } from './matmul.fixture.js';

/**
 * Worst |y − ref| / Σ|terms| allowed: two f16 roundings per term (x and w, unit roundoff 2^-11 each) bound it
 * by ~1e-3; random signs make the measured worst far smaller (to be stated from the H200 log).
 */
const MMA_TOL = 1e-3;

const gpu = await tensorCoreTestGpu();
const why = subgroupMatrixUnsupportedReason(gpu.matrixCapabilities);
const gpuTest = why === null ? test.serial : test.skip;
const skipNote = why === null ? '' : ` (skipped: ${why} on ${gpu.adapterInfo.vendor} ${gpu.adapterInfo.architecture})`;
const limits = gpu.matmulLimits;
const worst = { ref: 0, portable: 0 };
const note = (r: { ref: number; portable: number }) => {
  worst.ref = Math.max(worst.ref, r.ref);
  worst.portable = Math.max(worst.portable, r.portable);
};

const TILE_DTYPES: Record<MmaTileName, WeightDtype> = {
  m128x128: 'bf16', m128x128k64: 'f16', m128x128k16: 'f16', m128x256: 'f16', m256x128: 'f32', m128x128w8: 'bf16', m128x128s2: 'f32', m64x64: 'f32', m64x64k64: 'bf16', m64x64k128: 'bf16', m64x32k128: 'f16', m32x64k128: 'bf16', m32x32k128: 'f32',
};
for (const mmaTile of Object.keys(MMA_TILES) as MmaTileName[]) {
  for (const dtype of [...new Set<WeightDtype>([TILE_DTYPES[mmaTile], 'bf16'])]) {
    gpuTest(`matmul-mma - tile ${mmaTile} (${dtype}) matches float64 and the f32 GEMM on ragged edges${skipNote}`, async (t) => {
      const T = MMA_TILES[mmaTile];
      const run = async (c: Omit<Case, 'dtype'>) => note(await check(t, gpu, { ...c, dtype, variant: 'gemm-mma', mmaTile }, { limits, tol: MMA_TOL, comparePortable: true }));
      // a full tile plus a ragged one in every dimension; K with a partial slab
      await run({ M: T.BM + 5, N: T.BN + 3, K: 2 * T.BK + 8 });
      await run({ M: T.BM - 1, N: 2 * T.BN + 9, K: 3 * T.BK + 24 });
      // strided x, y written into a column slice, a stacked-expert weight offset, accumulate
      await run({ M: 37, N: 100, K: 128, xStride: 136, xOffset: 8, yStride: 120, yOffset: 16, before: 3 * 100 });
      await run({ M: 70, N: 90, K: 96, yStride: 100, yOffset: 4, accumulate: true });
    });
  }
}

// The staging rows only change which lane stages which slab row (staging-rows.ts): the same slabs, so the same
// sums in the same order as with the rows in order, on every tile, with 2- and 1-value weight chunks and f16 x
gpuTest(`matmul-mma - staging rows spread over the banks (the default) equal rows in order bit for bit, on every tile${skipNote}`, async (t) => {
  for (const mmaTile of Object.keys(MMA_TILES) as MmaTileName[]) {
    const T = MMA_TILES[mmaTile];
    for (const dtype of [...new Set<WeightDtype>([TILE_DTYPES[mmaTile], 'bf16'])]) {
      const base = { M: T.BM + 5, N: T.BN + 3, K: 3 * T.BK + 24, dtype, variant: 'gemm-mma' as const, mmaTile, accumulate: true, yStride: T.BN + 7, yOffset: 2 };
      const linear = await check(t, gpu, base, { limits: { ...limits, linearStagingRows: true }, tol: MMA_TOL });
      const spread = await check(t, gpu, base, { limits, tol: MMA_TOL });
      t.is(spread.y.filter((v, i) => !Object.is(v, linear.y[i])).length, 0, `${mmaTile} (${dtype}): outputs that differ from rows in order`);
    }
  }
});

// The grouped order only changes which workgroup takes which block: each output is the same sum in the same order.
gpuTest(`matmul-mma - blocks in grouped order (groups of 1, 3 and 8 rows of blocks, a ragged last group) equal the x-fastest GEMM bit for bit and match float64${skipNote}`, async (t) => {
  for (const [mmaTile, M, N, K] of [['m128x128', 1000, 700, 96], ['m128x256', 700, 1100, 64], ['m64x64k128', 333, 250, 256]] as const) {
    const base = { M, N, K, dtype: 'bf16' as const, variant: 'gemm-mma' as const, mmaTile, accumulate: true, yStride: N + 4, yOffset: 2 };
    const plain = await check(t, gpu, base, { limits, tol: MMA_TOL });
    for (const groupRows of [1, 3, 8]) {
      const grouped = await check(t, gpu, { ...base, groupRows }, { limits, tol: MMA_TOL });
      t.is(grouped.ref, plain.ref, `${mmaTile} ${M}×${N}×${K}, groups of ${groupRows}: the same worst error as x fastest`);
      const differ = grouped.y.filter((v, i) => !Object.is(v, plain.y[i])).length;
      t.is(differ, 0, `${mmaTile} ${M}×${N}×${K}, groups of ${groupRows}: outputs that differ from x fastest`);
    }
  }
});

gpuTest(`matmul-mma - split-K matches float64 and the f32 GEMM: a short last range, accumulate into strided y${skipNote}`, async (t) => {
  const run = async (c: Omit<Case, 'dtype' | 'variant'>) => note(await check(t, gpu, { ...c, dtype: 'bf16', variant: 'gemm-mma', mmaTile: 'm32x64k128' }, { limits, tol: MMA_TOL, comparePortable: true }));
  // K = 1000 is 8 slabs of 128: 3 splits of 384 + 384 + 232, 8 of one slab each
  await run({ M: 64, N: 200, K: 1000, splits: 3 });
  await run({ M: 64, N: 200, K: 1000, splits: 8 });
  await run({ M: 45, N: 70, K: 1000, splits: 4, yStride: 80, yOffset: 6, accumulate: true });
});

gpuTest(`matmul-mma - long K and prefill-sized M${skipNote}`, async (t) => {
  note(await check(t, gpu, { M: 300, N: 200, K: 2056, dtype: 'bf16', variant: 'gemm-mma' }, { limits, tol: MMA_TOL, comparePortable: true }));
  t.log(`worst error relative to Σ|terms| over every case: vs float64 ${worst.ref.toExponential(2)}, vs the f32 GEMM ${worst.portable.toExponential(2)}`);
});

// f16 activations (MatmulArgs.xDtype): the staging rounds f32 x to f16, so x given as those f16 values must give
// the same products bit for bit, on every tile and with split-K; and float64 on the f16 values.
gpuTest(`matmul-mma - f16 activations equal f32 ones holding the same values, bit for bit, on every tile${skipNote}`, async (t) => {
  const cases = [
    ...(Object.keys(MMA_TILES) as MmaTileName[]).map((mmaTile) => ({ M: MMA_TILES[mmaTile].BM + 7, N: MMA_TILES[mmaTile].BN + 5, K: 3 * MMA_TILES[mmaTile].BK + 24, mmaTile, splits: undefined })),
    { M: 45, N: 70, K: 1000, mmaTile: 'm32x64k128' as MmaTileName, splits: 4 },
  ];
  for (const c of cases) {
    const { M, N, K } = c;
    const xStride = K + 4, xOffset = 8;
    const x = roundTo(randomArray(xOffset + (M - 1) * xStride + K, M * 13 + K, 2), 'f16');
    const w = uploadWeight(gpu, 'w', roundTo(randomArray(N * K, N + K, 0.5), 'bf16'), 'bf16', [N, K]);
    const x32 = uploadF32(gpu, 'x32', x), x16 = gpu.upload('x16', packWeights(x, 'f16'));
    const scratch = c.splits ? gpu.buffer('split', c.splits * M * N * 4) : undefined;
    const run = async (xb: GPUBuffer, xDtype: 'f32' | 'f16') => {
      const y = gpu.buffer('y', M * N * 4);
      await gpu.run(matmulPrograms({
        x: xb, xDtype, weight: w, y, M, N, K, xStride, xOffset, variant: 'gemm-mma', mmaTile: c.mmaTile,
        ...(scratch ? { splitK: { scratch, splits: c.splits } } : {}),
      }, limits));
      const out = await gpu.readF32(y, 0, M * N);
      gpu.destroy(y);
      return out;
    };
    const a = await run(x32, 'f32'), b = await run(x16, 'f16');
    t.deepEqual(b, a, `${JSON.stringify(c)}: f16 x against f32 x of the same values`);
    const { y: want, mag } = matmulRef(x, roundTo(randomArray(N * K, N + K, 0.5), 'bf16'), new Float64Array(M * N), {
      M, N, K, dtype: 'bf16', xStride, xOffset, yStride: N, yOffset: 0, wo: 0, accumulate: false,
    });
    let worst = 0;
    for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(b[i]! - want[i]!) / (mag[i]! + 1e-30));
    t.true(worst < MMA_TOL, `${JSON.stringify(c)}: ${worst} of Σ|terms| against float64`);
    gpu.destroy(x32, x16, w.buffer, scratch);
  }
});

test(`matmul-mma - the launcher picks it only where the device has subgroup matrices and rows are whole words`, (t) => {
  const w: GpuTensor = { buffer: gpu.buffer('w', 4096 * 64 * 2), dtype: 'bf16', shape: [4096, 64] };
  const x = gpu.buffer('x', 4096 * 64 * 4), y = gpu.buffer('y', 4096 * 4096 * 4);
  const plan = (M: number, K = 64, lim = limits) => matmulPlan({ x, y, weight: { ...w, shape: [4096 * 64 / K, K] }, M, N: 4096, K }, lim).variant;
  t.is(plan(4096, 64, { ...limits, subgroupMatrix: false }), 'gemm');
  t.is(plan(1), 'gemv');
  if (why === null) {
    t.is(plan(4096), 'gemm-mma');
    t.is(plan(4096, 60), 'gemm'); // K not a whole number of 16-byte weight words: the f32 GEMM
  }
  t.throws(() => matmulPlan({ x, y, weight: w, M: 64, N: 64, K: 64, variant: 'gemm-mma' }, { ...limits, subgroupMatrix: false }), { instanceOf: RangeError, message: /subgroup matrices/ });
  // f16 activations only on the subgroup-matrix GEMM: the f32 kernels and the GEMV range refuse them by name
  const wt: GpuTensor = { ...w, shape: [4096, 64] };
  t.throws(() => matmulPrograms({ x, xDtype: 'f16', y, weight: wt, M: 64, N: 64, K: 64 }, { ...limits, subgroupMatrix: false }), { instanceOf: RangeError, message: /f16 x needs the subgroup-matrix GEMM/ });
  t.throws(() => matmulPrograms({ x, xDtype: 'f16', y, weight: wt, M: 4, N: 64, K: 64 }, limits), { instanceOf: RangeError, message: /GEMV range/ });
  t.throws(() => matmulPrograms({ x, xDtype: 'bf16' as 'f16', y, weight: wt, M: 64, N: 64, K: 64 }, limits), { instanceOf: RangeError, message: /x dtype 'bf16'/ });
  gpu.destroy(w.buffer, x, y);
});

test('matmul-mma - the default tile: the largest whose workgroups fill the device (2/3 of its slots; 8-subgroup tiles 1.5 times its slots) without padding N by more than an eighth, else 32 × 64', (t) => {
  // H200-like limits (132 slots) on stand-in buffers: only the plan is computed
  const lim = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, subgroupMatrix: true, workgroupSlots: 132 };
  const tile = (M: number, N: number, K = 2048) => {
    const p = matmulPlan({ x: { size: M * K * 4 } as GPUBuffer, y: { size: M * N * 4 } as GPUBuffer, weight: { buffer: { size: N * K * 2 } as GPUBuffer, dtype: 'bf16', shape: [N, K] }, M, N, K }, lim);
    return p.variant === 'gemm-mma' ? p.tileName : p.variant;
  };
  t.is(tile(4096, 3072), 'm128x256'); // prefill: 384 workgroups of 128 × 256
  t.is(tile(4096, 576), 'm128x128'); // 576 columns would pad to 768 on 256-wide tiles
  t.is(tile(1024, 2048), 'm128x128'); // 64 of 128 × 256 do not fill the device; 128 of 128 × 128 do
  t.is(tile(2048, 2048, 10944), 'm128x128'); // 128 of 128 × 256: under the 1.5 waves an 8-subgroup tile wants
  t.is(tile(4096, 2048), 'm128x256'); // 256 of them: o_proj and the shared experts' down at 4096 tokens
  t.is(tile(3072, 2048), 'm128x128'); // 192 < 198
  t.is(tile(4096, 10944), 'm128x256');
  t.is(tile(512, 2048), 'm64x64k128'); // 64 of 128 × 128, 256 of 64 × 64
  t.is(tile(64, 3072), 'm32x64k128'); // a decode batch: 48 of 64 × 64, 96 of 32 × 64
  t.is(tile(64, 576), 'm32x64k128'); // none fills the device: the last
  t.is(tile(16, 3072), 'm32x64k128'); // 9..16 rows: the GEMM where the device has subgroup matrices (GEMV_MMA_MAX_M)
  t.is(tile(9, 3072), 'm32x64k128');
  t.is(tile(8, 3072), 'gemv');
});
