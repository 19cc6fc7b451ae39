// The decode step's fused kernels against the unfused dispatches they replace, on odd sizes: the same inputs
// through both paths, the outputs compared bit for bit where the fused kernel reproduces the unfused arithmetic
// in the same order, or within float32 rounding where it sums in another order.
import test, { type ExecutionContext } from 'ava';
import { kvAppend } from '../../src/kernels/kv-quantize/index.js';
import { rmsNorm } from '../../src/kernels/rms-norm/rms-norm.js';
import { rope } from '../../src/kernels/rope/rope.js';
import { matmul } from '../../src/kernels/matmul/matmul.js';
import { fusedGemv, type FusedGemvOutput } from '../../src/kernels/matmul/gemv-fused.js';
import { siluMul } from '../../src/kernels/silu-mul/silu-mul.js';
import {
  moeCombine, moeExpertGemms, moeGemmVariant, moeGroup, moeRoute, moeRouteFused, moeRouterLogits, moeRouteSelect, moeRouting, moeScratchBytes,
  moeSelectGroup, MOE_ROUTE_FUSED_MAX_TOKENS, type MoeDims, type MoeScratch,
} from '../../src/kernels/moe/index.js';
import { allocMoeScratch, moePrograms } from '../../src/forward/mlp-programs.js';
import type { MoeWeights } from '../../src/weights/model-weights.js';
import type { KernelProgram } from '../../src/runtime/program.js';
import type { MlaConfig, MoeConfig } from '@latentwire/model';
import type { MoeRouting } from '../../src/kernels/moe/moe-route.js';
import type { Gpu } from '../../src/runtime/index.js';
import { KV_DTYPES, latentKvLayout } from '@latentwire/protocol';
import { roundTo, testGpu, uploadF32, uploadWeight } from '../../src/testing.js';
import { randomArray } from '@latentwire/testing';

for (const dtype of KV_DTYPES) {
  test(`fused - kv append with norm + rope equals rms-norm, rope, kv append (${dtype})`, async (t) => {
    const gpu = await testGpu();
    for (const [r, ropeDim, normDtype] of [[41, 6, 'bf16'], [512, 64, 'f32'], [200, 2, 'f16']] as const) {
      const width = r + ropeDim, stride = width + 5, rows = 3, pageSize = 5, pagesPerBuffer = 3, eps = 1e-6, factor = 1.25;
      const l = latentKvLayout({ kvLoraRank: r, ropeDim, pageSize, dtype });
      const x = roundTo(randomArray(rows * stride, 11 + r, 2), 'f32');
      const w = uploadWeight(gpu, 'norm', roundTo(randomArray(r, 12 + r, 1.5), normDtype), normDtype, [r]);
      const invFreq = uploadF32(gpu, 'inv_freq', Float32Array.from({ length: ropeDim / 2 }, (_, i) => 10000 ** (-(2 * i) / ropeDim)));
      const positions = gpu.upload('positions', Uint32Array.from([0, 13, 7]));
      const offsets = gpu.upload('offsets', Uint32Array.from([0, 4, 8]));
      const table = gpu.upload('table', Uint32Array.from([5, 0, 0, 0, 1, 2, 4, 0, 3, 0, 0, 0]));
      const pools = () => [0, 1].map((k) => gpu.upload(`pool${k}`, new Uint32Array((pagesPerBuffer * l.pageBytes) / 4).fill(0xdeadbeef)));
      const srcA = uploadF32(gpu, 'a', x), srcB = uploadF32(gpu, 'b', x);
      const poolsA = pools(), poolsB = pools();
      const common = { layout: l, rows, srcStride: stride, srcOffset: 0, positions, tableOffsets: offsets, pageTable: table, pagesPerBuffer };
      await gpu.run([
        rmsNorm({ x: srcA, weight: w, y: srcA, rows, cols: r, eps, inStride: stride, outStride: stride }),
        rope({ x: srcA, positions, invFreq, rows, heads: 1, ropeDim, rowStride: stride, headStride: 0, offset: r, attentionFactor: factor }),
        kvAppend({ ...common, src: srcA, pools: poolsA }),
        kvAppend({ ...common, src: srcB, pools: poolsB, finish: { normWeight: w, eps, invFreq, attentionFactor: factor } }),
      ]);
      t.deepEqual(await gpu.readU32(srcB, 0, rows * stride), await gpu.readU32(srcA, 0, rows * stride), `rows r=${r}`);
      for (let k = 0; k < 2; k++) {
        const n = (pagesPerBuffer * l.pageBytes) / 4;
        t.deepEqual(await gpu.readU32(poolsB[k]!, 0, n), await gpu.readU32(poolsA[k]!, 0, n), `pool ${k} r=${r}`);
      }
      gpu.destroy(w.buffer, invFreq, positions, offsets, table, srcA, srcB, ...poolsA, ...poolsB);
    }
  });
}

// M rows, K deep (36: x in vec4s but bf16 weights read one by one; 64: 16-byte weight words; 1000: the norm's
// loops past their one-load tails, 4 loads a trip in both kernels), two outputs of odd widths
for (const [wDtype, K] of [['bf16', 36], ['bf16', 64], ['f32', 37], ['bf16', 1000]] as const) {
  test(`fused - GEMV with RMSNorm prologue and two outputs equals rms-norm then two matmuls (${wDtype}, K ${K})`, async (t) => {
    const gpu = await testGpu();
    for (const M of [1, 3]) {
      const N1 = 37, N2 = 11, eps = 1e-6, xStride = K + 4;
      const x = uploadF32(gpu, 'x', roundTo(randomArray(M * xStride, 21 + M, 2), 'f32'));
      const g = uploadWeight(gpu, 'g', roundTo(randomArray(K, 22, 1.5), 'bf16'), 'bf16', [K]);
      const w1 = uploadWeight(gpu, 'w1', roundTo(randomArray(N1 * K, 23), wDtype), wDtype, [N1, K]);
      const w2 = uploadWeight(gpu, 'w2', roundTo(randomArray(N2 * K, 24), wDtype), wDtype, [N2, K]);
      const xn = gpu.buffer('xn', M * K * 4);
      const [a1, a2, b1, b2] = [N1, N2, N1, N2].map((n, i) => gpu.buffer(`y${i}`, M * (n + 2) * 4));
      const fused = fusedGemv({
        x, M, K, xStride, norm: { weight: g, eps },
        outputs: [{ weight: w1, y: b1!, N: N1, yStride: N1 + 2, yOffset: 1 }, { weight: w2, y: b2!, N: N2, yStride: N2 + 2, yOffset: 2 }],
      }, gpu.matmulLimits);
      t.truthy(fused);
      await gpu.run([
        rmsNorm({ x, weight: g, y: xn, rows: M, cols: K, eps, inStride: xStride }),
        matmul({ x: xn, weight: w1, y: a1!, M, N: N1, K, yStride: N1 + 2, yOffset: 1, variant: 'gemv' }, gpu.matmulLimits),
        matmul({ x: xn, weight: w2, y: a2!, M, N: N2, K, yStride: N2 + 2, yOffset: 2, variant: 'gemv' }, gpu.matmulLimits),
        fused!,
      ]);
      t.deepEqual(await gpu.readF32(b1!, 0, M * (N1 + 2)), await gpu.readF32(a1!, 0, M * (N1 + 2)), `first output, M ${M}`);
      t.deepEqual(await gpu.readF32(b2!, 0, M * (N2 + 2)), await gpu.readF32(a2!, 0, M * (N2 + 2)), `second output, M ${M}`);
      gpu.destroy(x, g.buffer, w1.buffer, w2.buffer, xn, a1, a2, b1, b2);
    }
  });
}

// the MoE layer's first GEMV: the normed rows written out, the shared experts' gate ‖ up (one stacked weight) into
// one buffer and the router logits into their own; odd K reads bf16 weights one by one, 64 in 16-byte words
for (const [wDtype, K] of [['bf16', 45], ['bf16', 64], ['f32', 37]] as const) {
  test(`fused - GEMV with RMSNorm prologue, normed rows out and two outputs equals rms-norm then two matmuls (${wDtype}, K ${K})`, async (t) => {
    const gpu = await testGpu();
    for (const M of [1, 3]) {
      const N1 = 48, N2 = 13, eps = 1e-6, xStride = K + 3, yStride = N1 + 3;
      const x = uploadF32(gpu, 'x', roundTo(randomArray(M * xStride, 61 + M, 2), 'f32'));
      const g = uploadWeight(gpu, 'g', roundTo(randomArray(K, 62, 1.5), 'bf16'), 'bf16', [K]);
      const [w1, w2] = [N1, N2].map((n, i) => uploadWeight(gpu, `w${i + 1}`, roundTo(randomArray(n * K, 63 + i), wDtype), wDtype, [n, K]));
      const [xnA, xnB] = [0, 1].map((i) => gpu.buffer(`xn${i}`, M * K * 4));
      const [a1, b1] = [0, 1].map((i) => gpu.buffer(`y1_${i}`, M * yStride * 4));
      const [a2, b2] = [0, 1].map((i) => gpu.buffer(`y2_${i}`, M * N2 * 4));
      const outputs = (y1: GPUBuffer, y2: GPUBuffer): [FusedGemvOutput, FusedGemvOutput] => [
        { weight: w1!, y: y1, N: N1, yStride, yOffset: 1 }, { weight: w2!, y: y2, N: N2 },
      ];
      const args = { x, M, K, xStride, norm: { weight: g, eps }, normOut: xnB!, outputs: outputs(b1!, b2!) };
      const fused = fusedGemv(args, gpu.matmulLimits);
      t.truthy(fused);
      t.is(fused!.buffers.length, 7); // x, w1, y, g, w2, y2, xn
      // one storage binding over the device's limit: not fused
      t.is(fusedGemv(args, { ...gpu.matmulLimits, maxStorageBuffersPerShaderStage: 6 }), null);
      await gpu.run([
        rmsNorm({ x, weight: g, y: xnA!, rows: M, cols: K, eps, inStride: xStride }),
        ...outputs(a1!, a2!).map((o) => matmul({ x: xnA!, weight: o.weight, y: o.y, M, N: o.N, K, yStride: o.yStride, yOffset: o.yOffset, variant: 'gemv' }, gpu.matmulLimits)),
        fused!,
      ]);
      t.deepEqual(await gpu.readU32(xnB!, 0, M * K), await gpu.readU32(xnA!, 0, M * K), `normed rows, M ${M}`);
      t.deepEqual(await gpu.readF32(b1!, 0, M * yStride), await gpu.readF32(a1!, 0, M * yStride), `first output, M ${M}`);
      t.deepEqual(await gpu.readF32(b2!, 0, M * N2), await gpu.readF32(a2!, 0, M * N2), `second output, M ${M}`);
      gpu.destroy(x, g.buffer, w1!.buffer, w2!.buffer, xnA, xnB, a1, b1, a2, b2);
    }
  });
}

// the router past 8 rows: the post-attention norm inside the logits kernel (its rows normed per workgroup of
// 1, 2 or 4 tokens, written out by the first column of workgroups); odd hidden, partial token blocks
for (const [wDtype, H] of [['bf16', 45], ['f32', 40]] as const) {
  test(`fused - router logits with the norm folded in equal rms-norm then router logits, bit for bit (${wDtype}, hidden ${H})`, async (t) => {
    const gpu = await testGpu();
    const E = 13, eps = 1e-6;
    const g = uploadWeight(gpu, 'g', roundTo(randomArray(H, 81, 1.5), 'bf16'), 'bf16', [H]);
    const w = uploadWeight(gpu, 'router', roundTo(randomArray(E * H, 82, 0.5), wDtype), wDtype, [E, H]);
    for (const T of [1, 5, 13, 20, 37]) {
      const x = uploadF32(gpu, 'x', roundTo(randomArray(T * H, 83 + T, 2), 'f32'));
      const [xnA, xnB] = [0, 1].map((i) => gpu.buffer(`xn${i}`, T * H * 4));
      const [la, lb] = [0, 1].map((i) => gpu.buffer(`logits${i}`, T * E * 4));
      await gpu.run([
        rmsNorm({ x, weight: g, y: xnA!, rows: T, cols: H, eps }),
        moeRouterLogits({ x: xnA!, gateWeight: w, logits: la!, tokens: T, hidden: H }),
        moeRouterLogits({ x, gateWeight: w, logits: lb!, tokens: T, hidden: H, norm: { weight: g, eps, xn: xnB! } }),
      ]);
      t.deepEqual(await gpu.readU32(xnB!, 0, T * H), await gpu.readU32(xnA!, 0, T * H), `normed rows, ${T} tokens`);
      t.deepEqual(await gpu.readU32(lb!, 0, T * E), await gpu.readU32(la!, 0, T * E), `logits, ${T} tokens`);
      gpu.destroy(x, xnA, xnB, la, lb);
    }
    t.throws(() => moeRouterLogits({ x: g.buffer, gateWeight: w, logits: g.buffer, tokens: 1, hidden: H, norm: { weight: w, eps, xn: g.buffer } }), { message: /norm weight/ });
    gpu.destroy(g.buffer, w.buffer);
  });
}

for (const [wDtype, K] of [['bf16', 44], ['bf16', 48], ['f32', 45]] as const) {
  test(`fused - GEMV over silu(gate)·up, accumulating, equals silu-mul then matmul (${wDtype}, K ${K})`, async (t) => {
    const gpu = await testGpu();
    for (const M of [1, 5]) {
      const N = 29;
      const gateUp = uploadF32(gpu, 'gate_up', roundTo(randomArray(M * 2 * K, 31 + M, 3), 'f32'));
      const w = uploadWeight(gpu, 'w', roundTo(randomArray(N * K, 32), wDtype), wDtype, [N, K]);
      const start = roundTo(randomArray(M * N, 33), 'f32');
      const ya = uploadF32(gpu, 'ya', start), yb = uploadF32(gpu, 'yb', start), gated = gpu.buffer('gated', M * K * 4);
      const fused = fusedGemv({ x: gateUp, M, K, silu: true, outputs: [{ weight: w, y: yb, N }], accumulate: true }, gpu.matmulLimits);
      t.truthy(fused);
      await gpu.run([
        siluMul({ gate: gateUp, y: gated, rows: M, cols: K }),
        matmul({ x: gated, weight: w, y: ya, M, N, K, accumulate: true, variant: 'gemv' }, gpu.matmulLimits),
        fused!,
      ]);
      t.deepEqual(await gpu.readF32(yb, 0, M * N), await gpu.readF32(ya, 0, M * N), `M ${M}`);
      gpu.destroy(gateUp, w.buffer, ya, yb, gated);
    }
  });
}

// The fused GEMVs stage their normed / activated rows in workgroup memory where they fit (GEMV_STAGE_INPUT): the
// same values in the same expression as the unstaged loop computes beside each weight load, so bit for bit equal;
// K 37 (x read one by one, the staged rows' last vec4 partial) and 64 (16-byte words); rows past M (M 3 of 4)
for (const K of [37, 64]) {
  test(`fused - GEMVs with the input rows staged equal the unstaged ones bit for bit, and stage where they fit (K ${K})`, async (t) => {
    const gpu = await testGpu();
    const N = 45, eps = 1e-6, lim = gpu.matmulLimits, unstaged = { ...lim, gemvStageInput: false };
    const g = uploadWeight(gpu, 'g', roundTo(randomArray(K, 122, 1.5), 'bf16'), 'bf16', [K]);
    const w = uploadWeight(gpu, 'w', roundTo(randomArray(N * K, 123), 'bf16'), 'bf16', [N, K]);
    for (const M of [1, 3]) {
      const x = uploadF32(gpu, 'x', roundTo(randomArray(M * 2 * K, 124 + M, 2), 'f32'));
      const [ya, yb, yc, yd] = [0, 1, 2, 3].map((i) => gpu.buffer(`y${i}`, M * N * 4));
      const norm = (y: GPUBuffer, l: typeof lim) => fusedGemv({ x, M, K, xStride: 2 * K, norm: { weight: g, eps }, outputs: [{ weight: w, y, N }] }, l);
      const silu = (y: GPUBuffer, l: typeof lim) => fusedGemv({ x, M, K, silu: true, outputs: [{ weight: w, y, N }] }, l);
      const staged = [norm(ya!, lim)!, silu(yc!, lim)!];
      for (const p of staged) t.regex(p.shader.label, /_sx\d+(_|$)/, 'staged where the rows fit');
      const plain = [norm(yb!, unstaged)!, silu(yd!, unstaged)!];
      for (const p of plain) t.notRegex(p.shader.label, /_sx/, 'GEMV_STAGE_INPUT=false: not staged');
      // room for the GEMV's own workgroup memory (1,028 bytes at one row) but not the staged row: fused, not staged
      if (M === 1) t.notRegex(norm(ya!, { ...lim, maxComputeWorkgroupStorageSize: 1100 })!.shader.label, /_sx/);
      await gpu.run([...staged, ...plain]);
      t.deepEqual(await gpu.readU32(ya!, 0, M * N), await gpu.readU32(yb!, 0, M * N), `norm, M ${M}`);
      t.deepEqual(await gpu.readU32(yc!, 0, M * N), await gpu.readU32(yd!, 0, M * N), `silu, M ${M}`);
      gpu.destroy(x, ya, yb, yc, yd);
    }
    gpu.destroy(g.buffer, w.buffer);
  });
}

test('fused - GEMV with two outputs into one buffer (gate ‖ up) equals two matmuls', async (t) => {
  const gpu = await testGpu();
  const M = 2, K = 64, I = 23;
  const x = uploadF32(gpu, 'x', roundTo(randomArray(M * K, 41, 2), 'f32'));
  const wg = uploadWeight(gpu, 'gate', roundTo(randomArray(I * K, 42), 'bf16'), 'bf16', [I, K]);
  const wu = uploadWeight(gpu, 'up', roundTo(randomArray(I * K, 43), 'bf16'), 'bf16', [I, K]);
  const a = gpu.buffer('a', M * 2 * I * 4), b = gpu.buffer('b', M * 2 * I * 4);
  const fused = fusedGemv({ x, M, K, outputs: [{ weight: wg, y: b, N: I, yStride: 2 * I }, { weight: wu, y: b, N: I, yStride: 2 * I, yOffset: I }] }, gpu.matmulLimits);
  t.is(fused!.buffers.length, 4); // x, gate, y, up: the output buffer bound once
  await gpu.run([
    matmul({ x, weight: wg, y: a, M, N: I, K, yStride: 2 * I }, gpu.matmulLimits),
    matmul({ x, weight: wu, y: a, M, N: I, K, yStride: 2 * I, yOffset: I }, gpu.matmulLimits),
    fused!,
  ]);
  t.deepEqual(await gpu.readF32(b, 0, M * 2 * I), await gpu.readF32(a, 0, M * 2 * I));
  // rows past the GEMV's limit: not fused (the caller runs the unfused dispatches)
  const big = gpu.buffer('big', 17 * K * 4);
  t.is(fusedGemv({ x: big, M: 17, K, outputs: [{ weight: wg, y: gpu.buffer('big_y', 17 * I * 4), N: I }] }, gpu.matmulLimits), null);
  gpu.destroy(x, wg.buffer, wu.buffer, a, b, big);
});

/** The same selection (ids, weights) and grouping in two scratches, bit for bit but for the atomics' order. */
async function sameRouting(t: ExecutionContext, gpu: Gpu, a: MoeScratch, b: MoeScratch, dims: MoeDims, T: number): Promise<void> {
  const k = dims.topK, bytes = moeScratchBytes(dims, T);
  t.deepEqual(await gpu.readU32(b.topkIds, 0, T * k), await gpu.readU32(a.topkIds, 0, T * k), `expert ids, ${T} tokens`);
  t.deepEqual(await gpu.readU32(b.topkWeights, 0, T * k), await gpu.readU32(a.topkWeights, 0, T * k), `expert weights, ${T} tokens`);
  // the grouping: offsets and tiles equal; within an expert's range the assignment order follows atomics
  const ga = await gpu.readU32(a.groups, 0, bytes.groups / 4), gb = await gpu.readU32(b.groups, 0, bytes.groups / 4);
  const sortedBase = ga.length - T * k;
  t.deepEqual([...gb.subarray(0, sortedBase)], [...ga.subarray(0, sortedBase)], `expert ranges and tiles, ${T} tokens`);
  for (let e = 0; e < dims.nExperts; e++) {
    const run = (g: Uint32Array) => [...g.subarray(sortedBase + g[e]!, sortedBase + g[e + 1]!)].sort((p, q) => p - q);
    t.deepEqual(run(gb), run(ga), `expert ${e}'s assignments, ${T} tokens`);
  }
}

// the router's three methods, with odd hidden sizes and expert counts, each for 1, 3 and the most tokens
const ROUTES: readonly (MoeRouting & { readonly H: number; readonly dtype: 'bf16' | 'f32' })[] = [
  { method: 'greedy', nExperts: 64, topK: 6, nGroup: 1, topkGroup: 1, normTopkProb: false, routedScalingFactor: 1, H: 100, dtype: 'bf16' },
  { method: 'group_limited_greedy', nExperts: 20, topK: 3, nGroup: 4, topkGroup: 2, normTopkProb: false, routedScalingFactor: 2.5, H: 37, dtype: 'f32' },
  { method: 'noaux_tc', nExperts: 36, topK: 4, nGroup: 4, topkGroup: 2, normTopkProb: true, routedScalingFactor: 2.5, H: 72, dtype: 'bf16' },
];
for (const r of ROUTES) {
  test(`fused - one-workgroup router equals rms-norm, router logits, selection, grouping (${r.method}, ${r.nExperts} experts)`, async (t) => {
    const gpu = await testGpu();
    const H = r.H, E = r.nExperts, k = r.topK, eps = 1e-6;
    for (const T of [1, 3, MOE_ROUTE_FUSED_MAX_TOKENS]) {
      const dims: MoeDims = { nExperts: E, topK: k, hidden: H, intermediate: 8 };
      const bytes = moeScratchBytes(dims, T);
      const scratch = () => ({
        logits: gpu.buffer('logits', bytes.logits), topkIds: gpu.buffer('ids', bytes.topkIds), topkWeights: gpu.buffer('wts', bytes.topkWeights),
        groups: gpu.buffer('groups', bytes.groups), act: gpu.buffer('act', 16), slotOut: gpu.buffer('slot', 16),
      });
      const a = scratch(), b = scratch();
      const x = uploadF32(gpu, 'x', roundTo(randomArray(T * H, 51 + T + E, 2), 'f32'));
      const norm = uploadWeight(gpu, 'norm', roundTo(randomArray(H, 52, 1.5), 'bf16'), 'bf16', [H]);
      const gate = uploadWeight(gpu, 'gate', roundTo(randomArray(E * H, 53 + E, 0.5), r.dtype), r.dtype, [E, H]);
      const bias = r.method === 'noaux_tc' ? uploadWeight(gpu, 'bias', roundTo(randomArray(E, 54, 0.3), 'f32'), 'f32', [E]) : null;
      const xnA = gpu.buffer('xn_a', T * H * 4), xnB = gpu.buffer('xn_b', T * H * 4);
      await gpu.run([
        rmsNorm({ x, weight: norm, y: xnA, rows: T, cols: H, eps }),
        ...moeRoute({ routing: r, x: xnA, gateWeight: gate, bias, logits: a.logits, topkIds: a.topkIds, topkWeights: a.topkWeights, tokens: T, hidden: H }),
        moeGroup({ dims, tokens: T, topkIds: a.topkIds, groups: a.groups, variant: 'gemv' }),
        moeRouteFused({ dims, routing: r, tokens: T, x, norm: { weight: norm, eps }, xn: xnB, gateWeight: gate, bias, scratch: b, variant: 'gemv' }),
      ]);
      t.deepEqual(await gpu.readU32(xnB, 0, T * H), await gpu.readU32(xnA, 0, T * H), `normed rows, ${T} tokens`);
      t.deepEqual(await gpu.readU32(b.logits, 0, T * E), await gpu.readU32(a.logits, 0, T * E), `logits, ${T} tokens`);
      await sameRouting(t, gpu, a, b, dims, T);
      gpu.destroy(x, norm.buffer, gate.buffer, bias?.buffer ?? null, xnA, xnB, ...Object.values(a), ...Object.values(b));
    }
  });
}

// the one-dispatch selection runs 128 threads up to 128 grouped experts, 256 beyond (V2's 160)
const V2_ROUTE: MoeRouting = { method: 'group_limited_greedy', nExperts: 160, topK: 6, nGroup: 8, topkGroup: 3, normTopkProb: false, routedScalingFactor: 16 };
for (const r of [...ROUTES, V2_ROUTE]) {
  test(`fused - selection and grouping in one dispatch equal selection then grouping (${r.method}, ${r.nExperts} experts)`, async (t) => {
    const gpu = await testGpu();
    const E = r.nExperts, k = r.topK;
    for (const T of [1, 3, MOE_ROUTE_FUSED_MAX_TOKENS]) {
      const dims: MoeDims = { nExperts: E, topK: k, hidden: 8, intermediate: 8 };
      const bytes = moeScratchBytes(dims, T);
      const logits = uploadF32(gpu, 'logits', roundTo(randomArray(T * E, 81 + T + E, 3), 'f32'));
      const scratch = () => ({
        logits, topkIds: gpu.buffer('ids', bytes.topkIds), topkWeights: gpu.buffer('wts', bytes.topkWeights),
        groups: gpu.buffer('groups', bytes.groups), act: gpu.buffer('act', 16), slotOut: gpu.buffer('slot', 16),
      });
      const a = scratch(), b = scratch();
      const bias = r.method === 'noaux_tc' ? uploadWeight(gpu, 'bias', roundTo(randomArray(E, 82, 0.3), 'f32'), 'f32', [E]) : null;
      await gpu.run([
        moeRouteSelect({ routing: r, logits, bias, topkIds: a.topkIds, topkWeights: a.topkWeights, tokens: T }),
        moeGroup({ dims, tokens: T, topkIds: a.topkIds, groups: a.groups, variant: 'gemv' }),
        moeSelectGroup({ dims, routing: r, tokens: T, scratch: b, bias, variant: 'gemv', subgroupSize: gpu.uniformSubgroupSize }),
      ]);
      await sameRouting(t, gpu, a, b, dims, T);
      gpu.destroy(bias?.buffer ?? null, ...Object.values(a), ...Object.values(b).filter((buf) => buf !== logits));
    }
  });
}

test('fused - GEMV over silu(gate)·up with the MoE combine in its epilogue equals the GEMV then the combine', async (t) => {
  const gpu = await testGpu();
  for (const [M, K, N, topK] of [[1, 48, 37, 6], [3, 44, 21, 2]] as const) {
    const gateUp = uploadF32(gpu, 'gate_up', roundTo(randomArray(M * 2 * K, 71 + M, 3), 'f32'));
    const w = uploadWeight(gpu, 'w', roundTo(randomArray(N * K, 72), 'bf16'), 'bf16', [N, K]);
    const slotOut = uploadF32(gpu, 'slot_out', roundTo(randomArray(M * topK * N, 73), 'f32'));
    const slotW = uploadF32(gpu, 'slot_w', roundTo(randomArray(M * topK, 74), 'f32'));
    const start = roundTo(randomArray(M * N, 75), 'f32');
    const ya = uploadF32(gpu, 'ya', start), yb = uploadF32(gpu, 'yb', start);
    const args = { x: gateUp, M, K, silu: true, outputs: [{ weight: w, y: ya, N }] as const, accumulate: true };
    const fused = fusedGemv({ ...args, outputs: [{ weight: w, y: yb, N }], combine: { slotOut, weights: slotW, topK } }, gpu.matmulLimits);
    t.truthy(fused);
    await gpu.run([
      fusedGemv(args, gpu.matmulLimits)!,
      moeCombine({ topK, tokens: M, hidden: N, slotOut, topkWeights: slotW, out: ya, accumulate: true }),
      fused!,
    ]);
    // the same operations in the same order, but a compiler may contract (y + p) + s differently in one kernel
    // than across two (lavapipe: 1 ulp on a few values): equal within float32 rounding
    const got = await gpu.readF32(yb, 0, M * N), want = await gpu.readF32(ya, 0, M * N);
    const off = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!) / Math.max(1, Math.abs(want[i]!))), 0);
    t.true(off <= 2 ** -21, `M ${M}: off by ${off}`);
    gpu.destroy(gateUp, w.buffer, slotOut, slotW, ya, yb);
  }
});

// A MoE layer at decode sizes (moePrograms: 5 dispatches) against the kernels it replaces, one dispatch each: a
// V2-style layer with shared experts, and a V3-style one (noaux_tc with the bias, grouped) without
const MOE_LAYERS: readonly (MoeConfig & { readonly H: number; readonly dtype: 'bf16' | 'f32' })[] = [
  {
    nRoutedExperts: 8, nSharedExperts: 2, numExpertsPerTok: 2, moeIntermediateSize: 16, nGroup: 1, topkGroup: 1, topkMethod: 'greedy',
    scoringFunc: 'softmax', normTopkProb: false, routedScalingFactor: 1.5, firstKDenseReplace: 0, moeLayerFreq: 1, H: 40, dtype: 'bf16',
  },
  {
    nRoutedExperts: 12, nSharedExperts: 0, numExpertsPerTok: 3, moeIntermediateSize: 24, nGroup: 4, topkGroup: 2, topkMethod: 'noaux_tc',
    scoringFunc: 'sigmoid', normTopkProb: true, routedScalingFactor: 2.5, firstKDenseReplace: 0, moeLayerFreq: 1, H: 48, dtype: 'f32',
  },
];
for (const moe of MOE_LAYERS) {
  test(`fused - a MoE layer at decode sizes in 4 or 5 dispatches equals the unfused kernels (${moe.topkMethod}, ${moe.nSharedExperts} shared experts)`, async (t) => {
    const gpu = await testGpu();
    const { H, dtype } = moe, E = moe.nRoutedExperts, k = moe.numExpertsPerTok, I = moe.moeIntermediateSize, Is = I * moe.nSharedExperts, eps = 1e-6;
    const cfg = { hiddenSize: H, moe } as unknown as MlaConfig;
    const dims: MoeDims = { nExperts: E, topK: k, hidden: H, intermediate: I };
    const weight = (name: string, shape: number[], seed: number, scale: number) =>
      uploadWeight(gpu, name, roundTo(randomArray(shape.reduce((p, q) => p * q, 1), seed, scale), dtype), dtype, shape);
    const experts = (proj: string, rows: number, cols: number, seed: number) => [{ tensor: weight(proj, [E, rows, cols], seed, 1 / Math.sqrt(cols)), firstExpert: 0, count: E }];
    const w: MoeWeights = {
      kind: 'moe',
      router: weight('router', [E, H], 91, 0.5),
      routerBias: moe.topkMethod === 'noaux_tc' ? uploadWeight(gpu, 'bias', roundTo(randomArray(E, 92, 0.3), 'f32'), 'f32', [E]) : null,
      gate: experts('gate', I, H, 93), up: experts('up', I, H, 94), down: experts('down', H, I, 95),
      shared: Is > 0 ? { gateUp: weight('s_gate_up', [2 * Is, H], 96, 0.2), down: weight('s_down', [H, Is], 98, 0.2) } : null,
      routedShared: 0,
    };
    const norm = uploadWeight(gpu, 'norm', roundTo(randomArray(H, 99, 1.5), 'bf16'), 'bf16', [H]);
    const routing = moeRouting(moe);
    for (const M of [1, 5]) {
      const resid = roundTo(randomArray(M * H, 100 + M, 2), 'f32');
      const lane = () => ({
        resid: uploadF32(gpu, 'resid', resid), xn: gpu.buffer('xn', M * H * 4), gateUp: gpu.buffer('gate_up', M * 2 * Math.max(Is, 1) * 4),
        gated: gpu.buffer('gated', M * Math.max(Is, 1) * 4), scratch: allocMoeScratch(gpu, cfg, M),
      });
      const a = lane(), b = lane();
      const variant = moeGemmVariant(dims, M, gpu.matmulLimits.subgroupMatrix, gpu.matmulLimits.moeMmaMinRows);
      const lim = gpu.matmulLimits, sc = { ...a.scratch, logits: a.scratch.logits! };
      const unfused: KernelProgram[] = [
        rmsNorm({ x: a.resid, weight: norm, y: a.xn, rows: M, cols: H, eps }),
        moeRouterLogits({ x: a.xn, gateWeight: w.router, logits: sc.logits, tokens: M, hidden: H }),
        moeRouteSelect({ routing, logits: sc.logits, bias: w.routerBias, topkIds: sc.topkIds, topkWeights: sc.topkWeights, tokens: M }),
        moeGroup({ dims, tokens: M, topkIds: sc.topkIds, groups: sc.groups, variant }),
        ...(w.shared ? [
          matmul({ x: a.xn, weight: w.shared.gateUp, y: a.gateUp, M, N: 2 * Is, K: H }, lim),
          siluMul({ gate: a.gateUp, y: a.gated, rows: M, cols: Is }),
          matmul({ x: a.gated, weight: w.shared.down, y: a.resid, M, N: H, K: Is, accumulate: true }, lim),
        ] : []),
        ...moeExpertGemms({ dims, tokens: M, x: a.xn, weights: { gate: w.gate, up: w.up, down: w.down }, groups: sc.groups, act: sc.act, slotOut: sc.slotOut, variant }),
        moeCombine({ topK: k, tokens: M, hidden: H, slotOut: sc.slotOut, topkWeights: sc.topkWeights, out: a.resid, accumulate: true }),
      ];
      const fused = moePrograms(cfg, w, { x: b.xn, out: b.resid, gateUp: b.gateUp, gated: b.gated, rows: M, scratch: b.scratch }, lim, { x: b.resid, weight: norm, eps });
      // one token without a shared MLP apart: its combine inside the experts' down GEMV (MOE_DOWN_COMBINE)
      t.is(fused.length, M === 1 && !w.shared ? 4 : 5, `dispatches, M ${M}`);
      await gpu.run([...unfused, ...fused]);
      t.deepEqual(await gpu.readU32(b.xn, 0, M * H), await gpu.readU32(a.xn, 0, M * H), `normed rows, M ${M}`);
      // the logits are summed in another order (the GEMV's lanes): float32 rounding apart, and the choices the same
      const near = async (p: GPUBuffer, q: GPUBuffer, n: number, what: string) => {
        const got = await gpu.readF32(q, 0, n), want = await gpu.readF32(p, 0, n);
        const off = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!) / Math.max(1, Math.abs(want[i]!))), 0);
        t.true(off <= 1e-5, `${what}, M ${M}: off by ${off}`);
      };
      await near(sc.logits, b.scratch.logits!, M * E, 'router logits');
      t.deepEqual(await gpu.readU32(b.scratch.topkIds, 0, M * k), await gpu.readU32(sc.topkIds, 0, M * k), `expert ids, M ${M}`);
      await near(a.resid, b.resid, M * H, 'layer output');
      for (const l of [a, b]) {
        gpu.destroy(l.resid, l.xn, l.gateUp, l.gated);
        l.scratch.release();
      }
    }
    gpu.destroy(norm.buffer, w.router.buffer, w.routerBias?.buffer, ...[w.gate, w.up, w.down].map((c) => c[0]!.tensor.buffer));
    if (w.shared) gpu.destroy(w.shared.gateUp.buffer, w.shared.down.buffer);
  });
}
