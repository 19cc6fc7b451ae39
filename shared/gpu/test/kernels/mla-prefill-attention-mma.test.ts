// The subgroup-matrix (tensor-core) MLA prefill attention against the float64 reference and the portable kernel
// on the same inputs: ragged prompt lengths (one row, a partial 64-row tile, several tiles), V2-Lite head dims,
// a chunk at a prefix offset, a kvLen cap, strided layouts and scores large enough to move the running max
// (the rescale path); each with workgroups of 64 query rows and of 128. q, k, v and p are rounded to f16 before the products, so the bound is MMA_TOL, not the
// portable kernel's 1e-4.
//
// Runs only where the adapter has subgroup matrices; elsewhere (lavapipe in CI) the tests are skipped with the
// reason in their title. On the GPU machine (NVIDIA; the Dawn toggles are set by the test itself):
//   cd shared/gpu && node ../../node_modules/ava/entrypoints/cli.mjs dist/test/kernels/mla-prefill-attention-mma.test.js --verbose
import test, { type ExecutionContext } from 'ava';
import { subgroupMatrixUnsupportedReason } from '../../src/runtime/index.js';
import { tensorCoreTestGpu } from '../../src/testing.js';
import { mlaPrefillAttention } from '../../src/kernels/mla-prefill-attention/mla-prefill-attention.js';
import { mlaPrefillMmaUnfitReason } from '../../src/kernels/mla-prefill-attention/mla-prefill-attention-mma.js';
import { maxAbsDiff } from '@latentwire/testing';
import { FIXTURE, SMALL, V2_LITE, attentionRef, inputs, runGpu, runStrided, scaleOf, type Case, type Inputs } from './mla-prefill-attention.fixture.js';

/**
 * Worst |out − ref| allowed on N(0, 1) inputs (outputs are averages of N(0, 1) values): q, k, v and p rounded
 * to f16 (unit roundoff 2^-11). Measured on the H200 (bench/results/prefill-attention-mma-test.h200.log):
 * 5.6e-5..3.2e-4 over the cases at scale 1/√(nope+rope); 4.4e-3 where scores reach the hundreds (scale 1,
 * growing keys: the error of q·k in f16 grows with |score|), held to RESCALE_TOL.
 */
const MMA_TOL = 1.5e-3;
const RESCALE_TOL = 2e-2;

const gpu = await tensorCoreTestGpu();
const why = subgroupMatrixUnsupportedReason(gpu.matrixCapabilities);
const gpuTest = why === null ? test.serial : test.skip;
const skipNote = why === null ? '' : ` (skipped: ${why} on ${gpu.adapterInfo.vendor} ${gpu.adapterInfo.architecture})`;
const worst = { ref: 0, portable: 0 };

/**
 * Runs both kernels on one case, the tensor-core one with workgroups of 64 and of 128 query rows, and holds each
 * to the float64 reference and the portable kernel.
 */
async function check(
  t: ExecutionContext, c: Case, x: Inputs, o: { qPos0?: number; qLen: number; kvLen?: number; scale: number }, tol = MMA_TOL,
): Promise<void> {
  const portable = await runGpu(gpu, c, x, o);
  const ref = attentionRef(c, x, o.qPos0 ?? 0, o.qLen, o.scale, o.kvLen);
  for (const mmaRows of [64, 128] as const) {
    const y = await runGpu(gpu, c, x, { ...o, subgroupMatrix: true, mmaRows });
    t.true(y.every(Number.isFinite), 'finite');
    const dRef = maxAbsDiff(y, ref), dPortable = maxAbsDiff(y, portable);
    worst.ref = Math.max(worst.ref, dRef);
    worst.portable = Math.max(worst.portable, dPortable);
    t.log(`${JSON.stringify(o)}, ${mmaRows} rows: vs float64 ${dRef.toExponential(2)}, vs portable ${dPortable.toExponential(2)}`);
    t.true(dRef < tol, `vs float64 ${dRef.toExponential(2)} (${JSON.stringify(o)}, ${mmaRows} rows)`);
    t.true(dPortable < tol, `vs portable ${dPortable.toExponential(2)} (${mmaRows} rows)`);
  }
}

for (const T of [1, 37, 64, 130, 300]) {
  gpuTest(`mla-prefill-attention-mma - matches float64 and the portable kernel on the tiny fixture's dims, T ${T}${skipNote}`, async (t) => {
    const c = { ...FIXTURE, heads: 3 };
    await check(t, c, inputs(c, T, 11 + T), { qLen: T, scale: scaleOf(c) });
  });
}

gpuTest(`mla-prefill-attention-mma - DeepSeek-V2-Lite head dims, ragged tiles${skipNote}`, async (t) => {
  const c = { ...V2_LITE, heads: 2 };
  await check(t, c, inputs(c, 150, 5), { qLen: 150, scale: scaleOf(c) });
});

gpuTest(`mla-prefill-attention-mma - a chunk at a prefix offset, and kvLen capping the keys${skipNote}`, async (t) => {
  const c = { ...FIXTURE, heads: 2 };
  const x = inputs(c, 200, 17);
  await check(t, c, x, { qPos0: 93, qLen: 107, scale: scaleOf(c) });
  await check(t, c, x, { qLen: 120, kvLen: 45, scale: scaleOf(c) });
});

gpuTest(`mla-prefill-attention-mma - growing scores move the running max (the rescale path) and stay finite${skipNote}`, async (t) => {
  const c = { ...FIXTURE, heads: 2 };
  const T = 160;
  const x = inputs(c, T, 23);
  // later keys get ever larger: each row's max moves by more than TAU several times over its keys
  const kv = Float64Array.from(x.kv, (v, i) => {
    const s = Math.floor(i / (c.heads * (c.nope + c.v)));
    return (i % (c.nope + c.v)) < c.nope ? v * (1 + s / 16) : v;
  });
  await check(t, c, { ...x, kv }, { qLen: T, scale: 1 }, RESCALE_TOL);
});

gpuTest(`mla-prefill-attention-mma - strided layouts (latent inside wider rows, padded output rows)${skipNote}`, async (t) => {
  const c = { ...FIXTURE, heads: 2 };
  const { got, want } = await runStrided(gpu, c, 70, 31, { latentRow: c.r + c.rope + 8, kpeOffset: c.r + 4, outRow: c.heads * c.v + 4 }, true);
  t.true(maxAbsDiff(got, want) < MMA_TOL);
  t.log(`worst |error| over every case: vs float64 ${worst.ref.toExponential(2)}, vs the portable kernel ${worst.portable.toExponential(2)}`);
});

test('mla-prefill-attention-mma - the launcher takes it only for fitting dims and strides', (t) => {
  const big = gpu.buffer('big', 1 << 20);
  const base = {
    q: big, kv: big, latent: big, out: big, nope: FIXTURE.nope, rope: FIXTURE.rope, v: FIXTURE.v, heads: 1,
    kvLoraRank: FIXTURE.r, qLen: 10, scale: 0.1, limits: gpu.limits, subgroupMatrix: true,
  };
  // 128 rows by default: 256 invocations and ~47 KiB, where the device allows them (the H100's 48 KiB), else 64
  const big48 = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024, maxComputeWorkgroupSizeX: 1024 };
  t.regex(mlaPrefillAttention({ ...base, limits: big48 }).shader.label, /_mma_.*_q128_/);
  t.deepEqual(mlaPrefillAttention({ ...base, qLen: 129, limits: big48 }).workgroups, [2, 1]);
  t.regex(mlaPrefillAttention({ ...base, mmaRows: 64, limits: big48 }).shader.label, /_mma_.*_q64_/);
  const small = { ...big48, maxComputeWorkgroupStorageSize: 32768 };
  t.regex(mlaPrefillAttention({ ...base, limits: small }).shader.label, /_mma_.*_q64_/);
  t.deepEqual(mlaPrefillAttention({ ...base, qLen: 129, limits: small }).workgroups, [3, 1]);
  t.notRegex(mlaPrefillAttention({ ...base, subgroupMatrix: false }).shader.label, /_mma_/);
  // SMALL: nope + rope = 32 but v = 20 is no multiple of 16
  t.notRegex(mlaPrefillAttention({ ...base, nope: SMALL.nope, rope: SMALL.rope, v: SMALL.v, kvLoraRank: SMALL.r }).shader.label, /_mma_/);
  t.regex(mlaPrefillMmaUnfitReason(SMALL) ?? '', /multiples of 16/);
  t.is(mlaPrefillMmaUnfitReason(V2_LITE), null);
  // a latent row stride that is not a whole number of 16-byte words
  t.notRegex(mlaPrefillAttention({ ...base, strides: { latentRow: FIXTURE.r + FIXTURE.rope + 2 } }).shader.label, /_mma_/);
  gpu.destroy(big);
});
