// The subgroup-matrix (tensor-core) engine of headMatmul against float64 and against the portable kernel on the
// same inputs: odd K and N, partial row blocks (16..64 rows a workgroup, several blocks), strided x and y, a
// weight inside a larger buffer (as W_UK inside kv_b_proj), the rope form and the split-merge form. Its operands
// are f16, so it is held to MMA_TOL, not the portable kernel's 1e-4.
//
// Runs only where the adapter has subgroup matrices; elsewhere (lavapipe in CI) the tests are skipped with the
// reason in their title, and every variant's WGSL is type-checked with stand-ins for the matrices instead. On the GPU machine (bench/gpu/suite.sh mma-tests runs it):
//   cd decode-node && npx ava dist/test/kernels/head-matmul-mma.test.js --verbose
import test, { type ExecutionContext } from 'ava';
import { randomArray } from '@latentwire/testing';
import { roundTo, standInMatrices, tensorCoreTestGpu, uploadWeight, wgslErrors } from '@latentwire/gpu/testing';
import { headMatmul, headMatmulMmaShader, type HeadMatmulArgs } from '../../src/kernels/head-matmul/index.js';
import { mmaUnsupportedReason } from '../../src/kernels/grouped-decode-attention/index.js';

/** Max |got − want| / max(1, |want|) allowed against float64 and against the portable kernel. */
const MMA_TOL = 3e-3;

const gpu = await tensorCoreTestGpu();
const why = mmaUnsupportedReason(gpu.matrixCapabilities);
const gpuTest = why === null ? test.serial : test.skip;
const skipNote = why === null ? '' : ` (skipped: ${why})`;

function relErr(got: ArrayLike<number>, want: ArrayLike<number>, used: (i: number) => boolean): number {
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    if (!used(i)) continue;
    const e = Math.abs(got[i]! - want[i]!) / Math.max(1, Math.abs(want[i]!));
    worst = Number.isNaN(e) ? Infinity : Math.max(worst, e);
  }
  return worst;
}

/** Runs `args` on both engines into fresh y buffers of `ySize` floats; the subgroup-matrix one must really run. */
async function bothEngines(args: Omit<HeadMatmulArgs, 'y' | 'engine'>, ySize: number): Promise<{ fast: Float32Array; portable: Float32Array }> {
  const [ya, yb] = [0, 1].map((i) => gpu.buffer(`y${i}`, ySize * 4));
  const fast = headMatmul({ ...args, y: ya!, engine: 'subgroup-matrix' });
  if (!fast.shader.label.startsWith('head_matmul_mma')) throw new Error(`the subgroup-matrix engine did not run: ${fast.shader.label}`);
  await gpu.run([fast, headMatmul({ ...args, y: yb!, engine: 'f32' })]);
  const out = { fast: await gpu.readF32(ya!, 0, ySize), portable: await gpu.readF32(yb!, 0, ySize) };
  gpu.destroy(ya, yb);
  return out;
}

function check(t: ExecutionContext, what: string, fast: Float32Array, portable: Float32Array, want: Float64Array | null, used: (i: number) => boolean): void {
  const vsPortable = relErr(fast, portable, used);
  t.true(vsPortable < MMA_TOL, `${what}: vs portable ${vsPortable}`);
  if (want) {
    const vsRef = relErr(fast, want, used);
    t.true(vsRef < MMA_TOL, `${what}: vs float64 ${vsRef}`);
    t.true(relErr(portable, want, used) < 1e-4, `${what}: portable vs float64`);
    t.log(`${what}: vs float64 ${vsRef.toExponential(2)}, vs portable ${vsPortable.toExponential(2)}`);
  } else t.log(`${what}: vs portable ${vsPortable.toExponential(2)}`);
}

for (const dtype of ['bf16', 'f16'] as const) {
  gpuTest(`head matmul (subgroup-matrix) - ${dtype}: odd K and N, partial and several row blocks, strides, weight at an offset${skipNote}`, async (t) => {
    for (const [B, heads, K, N] of [[16, 3, 128, 512], [37, 2, 70, 66], [100, 2, 512, 128], [64, 1, 200, 30]] as const) {
      const xStride = heads * (K + 3), xHead = K + 3, yStride = heads * N + 6;
      const wRow = N + 2, wHead = K * wRow + 4, wOff = 6;
      const x = randomArray(B * xStride, 1 + B);
      const w = roundTo(randomArray(wOff + heads * wHead, 2 + K, 0.5), dtype);
      const xb = gpu.upload('x', Float32Array.from(x));
      const wb = uploadWeight(gpu, 'w', w, dtype, [w.length]);
      const { fast, portable } = await bothEngines({
        x: xb, weight: wb, batch: B, heads, K, N, xRowStride: xStride, xHeadStride: xHead, yRowStride: yStride, yHeadStride: N,
        wOffset: wOff, wHeadStride: wHead, wRowStride: wRow,
      }, B * yStride);
      const want = new Float64Array(B * yStride);
      for (let b = 0; b < B; b++) for (let h = 0; h < heads; h++) for (let n = 0; n < N; n++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += Math.fround(x[b * xStride + h * xHead + k]!) * w[wOff + h * wHead + k * wRow + n]!;
        want[b * yStride + h * N + n] = s;
      }
      check(t, `[${B}, ${heads}, ${K}, ${N}]`, fast, portable, want, (i) => i % yStride < heads * N);
      gpu.destroy(xb, wb.buffer);
    }
  });
}

gpuTest(`head matmul (subgroup-matrix) - with rope: the product and the roped slice as the portable kernel's${skipNote}`, async (t) => {
  for (const [B, heads, nope, ropeDim, N] of [[19, 2, 24, 8, 70], [64, 3, 128, 64, 512]] as const) {
    const qk = nope + ropeDim, out = N + ropeDim;
    const x = gpu.upload('x', Float32Array.from(randomArray(B * heads * qk, 61 + B)));
    const w = uploadWeight(gpu, 'w', roundTo(randomArray(heads * nope * N, 62, 0.5), 'bf16'), 'bf16', [heads * nope, N]);
    const positions = gpu.upload('positions', Uint32Array.from({ length: B }, (_, b) => 3 + 17 * b));
    const invFreq = gpu.upload('inv_freq', Float32Array.from({ length: ropeDim / 2 }, (_, i) => 10000 ** (-(2 * i) / ropeDim)));
    const { fast, portable } = await bothEngines({
      x, weight: w, batch: B, heads, K: nope, N, xRowStride: heads * qk, xHeadStride: qk, yRowStride: heads * out, yHeadStride: out,
      rope: { positions, invFreq, ropeDim, inOffset: nope, outOffset: N, attentionFactor: 1 },
    }, B * heads * out);
    check(t, `rope [${B}, ${heads}, ${nope} + ${ropeDim}, ${N}]`, fast, portable, null, () => true);
    // the roped slice is the same f32 arithmetic in both engines
    for (let i = 0; i < B * heads; i++) {
      t.deepEqual(fast.subarray(i * out + N, (i + 1) * out), portable.subarray(i * out + N, (i + 1) * out), `roped slice of row ${i}`);
    }
    gpu.destroy(x, w.buffer, positions, invFreq);
  }
});

gpuTest(`head matmul (subgroup-matrix) - merging KV splits while staging, as the portable kernel's${skipNote}`, async (t) => {
  for (const [B, heads, S, K, N] of [[21, 2, 3, 72, 20], [64, 2, 9, 512, 128]] as const) {
    const partial = gpu.upload('partial', Float32Array.from(randomArray(B * heads * S * K, 71 + S)));
    const lse = gpu.upload('lse', Float32Array.from(randomArray(B * heads * S, 72 + S, 30)));
    const w = uploadWeight(gpu, 'w', roundTo(randomArray(heads * K * N, 73, 0.5), 'bf16'), 'bf16', [heads * K, N]);
    const { fast, portable } = await bothEngines({ x: partial, merge: { lse, numSplits: S }, weight: w, batch: B, heads, K, N }, B * heads * N);
    check(t, `merge [${B}, ${heads}, ${S} splits, ${K}, ${N}]`, fast, portable, null, () => true);
    gpu.destroy(partial, lse, w.buffer);
  }
});

// runs everywhere: every variant type-checked with stand-ins for the matrices (standInMatrices), so CI catches a
// WGSL error before the GPU machine does
test('head matmul (subgroup-matrix) - every dtype, row count and form compiles (matrices stood in)', async (t) => {
  for (const dtype of ['bf16', 'f16'] as const) for (const BM of [16, 32, 48, 64]) {
    for (const form of [{ rope: false }, { rope: true }, { rope: false, merge: true }]) {
      const s = headMatmulMmaShader({ dtype, BM, ...form });
      t.true(/subgroupMatrix/.test(s.source), `${s.label} uses subgroup matrices`);
      t.is(await wgslErrors(gpu, standInMatrices(s.source)), '', s.label);
    }
  }
});

test.after.always(() => gpu.dispose());
