import test from 'ava';
import { subgroupMatrixUnsupportedReason, type Gpu } from '../../src/runtime/index.js';
import type { MlaConfig, MoeConfig, TopkMethod } from '@latentwire/model';
import {
  moeDownShader, moeExperts, moeGateUpShader, moeGemmVariant, ROUTER_GEMM_MIN_TOKENS, moeRoute, moeRouteSelect, moeRouting, moeScratchBytes, MOE_GEMM_VARIANTS,
  type MoeDims, type MoeExpertChunk, type MoeExpertWeights, type MoeGemmVariant, type MoeScratch,
} from '../../src/kernels/moe/index.js';
import { type GpuTensor } from '../../src/kernels/weight-dtype.js';
import type { MatmulLimits } from '../../src/kernels/matmul/matmul.js';
import { packWeights, type WeightDtype } from '@latentwire/model';
import { linear, moeLayer, moeRoute as refRoute, rmsNorm, row, siluMlp, topK, type MlpWeights, type MoeWeights } from '../reference/index.js';
import { roundTo, testGpu, uploadF32, uploadWeight } from '../../src/testing.js';
import { maxAbsDiff, randomArray, rng } from '@latentwire/testing';

// The expert GEMM forms this device runs: the subgroup-matrix one only where it has subgroup matrices (on the
// GPU machine with DAWN_FEATURES=allow_unsafe_apis,vulkan_enable_f16_on_nvidia; not on lavapipe). Its operands
// are f16, so it is held to MMA_TOL instead of the f32 forms' 1e-4 (measured on an H200: see the log in
// bench/results/moe-mma-test.h200.log).
const EXPERT_VARIANTS: readonly MoeGemmVariant[] = subgroupMatrixUnsupportedReason((await testGpu()).matrixCapabilities) === null
  ? MOE_GEMM_VARIANTS : ['gemv', 'gemv1', 'tiled'];
const MMA_TOL = 1e-2;
const tolOf = (v: MoeGemmVariant) => (v.startsWith('mma') ? MMA_TOL : 1e-4);

// ---------------------------------------------------------------- helpers

function moeCfg(over: Partial<MoeConfig> & Pick<MoeConfig, 'nRoutedExperts' | 'numExpertsPerTok' | 'topkMethod'>): MoeConfig {
  return {
    nSharedExperts: 0,
    moeIntermediateSize: 24,
    nGroup: 1,
    topkGroup: 1,
    scoringFunc: over.topkMethod === 'noaux_tc' ? 'sigmoid' : 'softmax',
    normTopkProb: false,
    routedScalingFactor: 1,
    firstKDenseReplace: 0,
    moeLayerFreq: 1,
    ...over,
  };
}

/**
 * How close the reference's race was for one token: the gap between the last kept and the first dropped group
 * (grouped methods) and between the k-th and (k+1)-th candidate. Below ~1e-5, f32 may legitimately pick otherwise.
 */
function raceMargin(moe: MoeConfig, logits: Float64Array, bias: Float64Array | null): number {
  const E = moe.nRoutedExperts, k = moe.numExpertsPerTok;
  let cand = candidateValues(moe, logits, bias);
  let margin = Infinity;
  if (moe.topkMethod !== 'greedy' && moe.topkGroup < moe.nGroup) {
    const per = E / moe.nGroup;
    const gs = Array.from({ length: moe.nGroup }, (_, g) => {
      const m = [...cand.subarray(g * per, (g + 1) * per)].sort((a, b) => b - a);
      return moe.topkMethod === 'noaux_tc' ? m[0]! + m[1]! : m[0]!;
    });
    const order = topK(gs, moe.nGroup);
    margin = gs[order[moe.topkGroup - 1]!]! - gs[order[moe.topkGroup]!]!;
    const kept = new Set(order.slice(0, moe.topkGroup));
    cand = cand.map((v, e) => (kept.has(Math.floor(e / per)) ? v : 0));
  }
  if (k < E) {
    const order = topK(cand, k + 1);
    margin = Math.min(margin, cand[order[k - 1]!]! - cand[order[k]!]!);
  }
  return margin;
}

/** The values top-k runs over (scores, biased for V3), before group masking. */
function candidateValues(moe: MoeConfig, logits: Float64Array, bias: Float64Array | null): Float64Array {
  if (moe.topkMethod === 'noaux_tc') return logits.map((l, e) => 1 / (1 + Math.exp(-l)) + bias![e]!);
  const m = Math.max(...logits);
  const ex = logits.map((l) => Math.exp(l - m));
  const s = ex.reduce((a, b) => a + b, 0);
  return ex.map((v) => v / s);
}

function destroyAll(gpu: Gpu, ...bufs: (GPUBuffer | GpuTensor | null | undefined)[]): void {
  for (const b of bufs) {
    if (!b) continue;
    gpu.destroy('dtype' in b ? b.buffer : b);
  }
}

// ---------------------------------------------------------------- router

interface RouterCase {
  readonly name: string;
  readonly method: TopkMethod;
  readonly E: number;
  readonly k: number;
  readonly nGroup: number;
  readonly topkGroup: number;
  readonly T: number;
  readonly H: number;
  readonly dtype: WeightDtype;
}

const routerCases: RouterCase[] = [
  { name: 'greedy 9 experts top-3', method: 'greedy', E: 9, k: 3, nGroup: 1, topkGroup: 1, T: 13, H: 37, dtype: 'bf16' },
  { name: 'greedy V2-Lite shape (64, top-6)', method: 'greedy', E: 64, k: 6, nGroup: 1, topkGroup: 1, T: 5, H: 96, dtype: 'bf16' },
  { name: 'group_limited_greedy 9 experts, 3 groups keep 2, top-3', method: 'group_limited_greedy', E: 9, k: 3, nGroup: 3, topkGroup: 2, T: 13, H: 37, dtype: 'f16' },
  { name: 'group_limited_greedy 64 experts, 8 groups keep 3, top-6', method: 'group_limited_greedy', E: 64, k: 6, nGroup: 8, topkGroup: 3, T: 3, H: 40, dtype: 'bf16' },
  { name: 'noaux_tc 9 experts, 3 groups keep 2, top-3', method: 'noaux_tc', E: 9, k: 3, nGroup: 3, topkGroup: 2, T: 13, H: 37, dtype: 'bf16' },
  { name: 'noaux_tc V3 shape (256, 8 groups keep 4, top-8)', method: 'noaux_tc', E: 256, k: 8, nGroup: 8, topkGroup: 4, T: 4, H: 72, dtype: 'bf16' },
  { name: 'noaux_tc ungrouped', method: 'noaux_tc', E: 12, k: 4, nGroup: 1, topkGroup: 1, T: 2, H: 33, dtype: 'f32' },
];

for (const c of routerCases) {
  for (const norm of [false, true]) {
    test.serial(`moe-route - ${c.name}, norm_topk_prob ${norm}, scaling 2.5 (${c.dtype})`, async (t) => {
      const gpu = await testGpu();
      const moe = moeCfg({ nRoutedExperts: c.E, numExpertsPerTok: c.k, topkMethod: c.method, nGroup: c.nGroup, topkGroup: c.topkGroup, normTopkProb: norm, routedScalingFactor: 2.5 });
      const seed = c.E * 100 + c.k + c.H;
      const x = roundTo(randomArray(c.T * c.H, seed, 1), 'f32');
      const w = roundTo(randomArray(c.E * c.H, seed + 1, 0.5), c.dtype);
      // a bias of the size of the score spread, so it reorders the choice (checked below)
      const bias = c.method === 'noaux_tc' ? roundTo(randomArray(c.E, seed + 2, 0.3), 'f32') : null;
      const xb = uploadF32(gpu, 'x', x);
      const wb = uploadWeight(gpu, 'w_gate', w, c.dtype, [c.E, c.H]);
      const bb = bias ? uploadWeight(gpu, 'bias', bias, 'f32', [c.E]) : null;
      const logitsB = gpu.buffer('logits', c.T * c.E * 4);
      const idsB = gpu.buffer('ids', c.T * c.k * 4);
      const wtsB = gpu.buffer('weights', c.T * c.k * 4);
      await gpu.run(moeRoute({
        routing: moeRouting(moe), x: xb, gateWeight: wb, bias: bb, logits: logitsB, topkIds: idsB, topkWeights: wtsB, tokens: c.T, hidden: c.H,
      }));
      const logits = await gpu.readF32(logitsB, 0, c.T * c.E);
      const ids = await gpu.readU32(idsB, 0, c.T * c.k);
      const wts = await gpu.readF32(wtsB, 0, c.T * c.k);
      const refLogits = linear(x, w, c.H);
      t.true(maxAbsDiff(logits, refLogits) < 1e-5, 'logits');
      let compared = 0, biasMattered = false;
      for (let tok = 0; tok < c.T; tok++) {
        const l = row(refLogits, c.E, tok);
        if (raceMargin(moe, l, bias) < 1e-5) continue; // a near-tie f32 may resolve either way
        compared++;
        const ref = refRoute(moe, l, bias);
        t.deepEqual([...ids.subarray(tok * c.k, (tok + 1) * c.k)], ref.expertIds, `token ${tok} ids`);
        t.true(maxAbsDiff(wts.subarray(tok * c.k, (tok + 1) * c.k), ref.weights) < 1e-5, `token ${tok} weights`);
        if (bias) {
          const unbiased = refRoute(moe, l, new Float64Array(c.E));
          if (unbiased.expertIds.join() !== ref.expertIds.join()) biasMattered = true;
        }
      }
      t.true(compared >= c.T - 1, `only ${compared} of ${c.T} tokens clear of near-ties`);
      if (bias) t.true(biasMattered, 'the bias should change the choice for some token');
      destroyAll(gpu, xb, wb, bb, logitsB, idsB, wtsB);
    });
  }
}

test.serial('moe-route - V2 ignores norm_topk_prob; V3 normalizes, then scales', async (t) => {
  const gpu = await testGpu();
  const E = 8, k = 3, T = 1;
  const logits = Float32Array.from([0.3, -1.2, 2.0, 0.9, 1.7, -0.4, 0.1, 1.1]);
  const lb = uploadF32(gpu, 'logits', logits);
  const idsB = gpu.buffer('ids', k * 4);
  const wtsB = gpu.buffer('w', k * 4);
  const bias = uploadWeight(gpu, 'bias', new Float64Array(E), 'f32', [E]);
  const run = async (method: TopkMethod, norm: boolean) => {
    const moe = moeCfg({ nRoutedExperts: E, numExpertsPerTok: k, topkMethod: method, normTopkProb: norm, routedScalingFactor: 3 });
    await gpu.run([moeRouteSelect({ routing: moeRouting(moe), logits: lb, bias: method === 'noaux_tc' ? bias : null, topkIds: idsB, topkWeights: wtsB, tokens: T })]);
    return { ids: [...(await gpu.readU32(idsB, 0, k))], w: [...(await gpu.readF32(wtsB, 0, k))] };
  };
  const a = await run('greedy', false), b = await run('greedy', true);
  t.deepEqual(a, b);
  t.deepEqual(a.ids, [2, 4, 7]);
  const v3 = await run('noaux_tc', true);
  t.deepEqual(v3.ids, [2, 4, 7]);
  t.true(Math.abs(v3.w.reduce((s, v) => s + v, 0) - 3) < 1e-5, 'normalized weights sum to routed_scaling_factor');
  destroyAll(gpu, lb, idsB, wtsB, bias);
});

test.serial('moe-route - exact ties go to the lower expert and the lower group', async (t) => {
  const gpu = await testGpu();
  const E = 9, k = 3;
  // experts 1, 4, 7 tie at the top; 0 and 5 tie next. Groups of 3: {0,1,2} {3,4,5} {6,7,8}.
  const logits = Float32Array.from([0.5, 2, -1, -1, 2, 0.5, -1, 2, -1]);
  const lb = uploadF32(gpu, 'logits', logits);
  const idsB = gpu.buffer('ids', k * 4);
  const wtsB = gpu.buffer('w', k * 4);
  const route = async (method: TopkMethod, nGroup: number, topkGroup: number, kk: number) => {
    const moe = moeCfg({ nRoutedExperts: E, numExpertsPerTok: kk, topkMethod: method, nGroup, topkGroup });
    await gpu.run([moeRouteSelect({ routing: moeRouting(moe), logits: lb, bias: null, topkIds: idsB, topkWeights: wtsB, tokens: 1 })]);
    return [...(await gpu.readU32(idsB, 0, kk))];
  };
  t.deepEqual(await route('greedy', 1, 1, 3), [1, 4, 7]);
  t.deepEqual(await route('greedy', 1, 1, 2), [1, 4]);
  // three groups tie on their max: the first two are kept, so 7 is out and 0 (0.5) beats 5 (0.5) by index
  t.deepEqual(await route('group_limited_greedy', 3, 2, 3), [1, 4, 0]);
  t.deepEqual(topK(logits, 3), [1, 4, 7]);
  destroyAll(gpu, lb, idsB, wtsB);
});

// ---------------------------------------------------------------- experts

interface ExpertSetup {
  readonly E: number;
  readonly k: number;
  readonly H: number;
  readonly I: number;
  readonly dtype: WeightDtype;
  readonly experts: MlpWeights[];
}

function makeExperts(E: number, H: number, I: number, dtype: WeightDtype, seed: number): ExpertSetup['experts'] {
  return Array.from({ length: E }, (_, e) => ({
    gateProj: roundTo(randomArray(I * H, seed + 3 * e, 1 / Math.sqrt(H)), dtype),
    upProj: roundTo(randomArray(I * H, seed + 3 * e + 1, 1 / Math.sqrt(H)), dtype),
    downProj: roundTo(randomArray(H * I, seed + 3 * e + 2, 1 / Math.sqrt(I)), dtype),
  }));
}

/** Stacks experts [first, first+count) of one projection (or gate|up fused) into one chunk. */
function chunk(gpu: Gpu, s: ExpertSetup, proj: 'gate' | 'up' | 'down' | 'gateUp', first: number, count: number): MoeExpertChunk {
  const rows = proj === 'down' ? s.H : proj === 'gateUp' ? 2 * s.I : s.I;
  const cols = proj === 'down' ? s.I : s.H;
  const vals = new Float64Array(count * rows * cols);
  for (let i = 0; i < count; i++) {
    const ex = s.experts[first + i]!;
    const base = i * rows * cols;
    if (proj === 'gateUp') {
      vals.set(ex.gateProj, base);
      vals.set(ex.upProj, base + s.I * s.H);
    } else vals.set(proj === 'gate' ? ex.gateProj : proj === 'up' ? ex.upProj : ex.downProj, base);
  }
  const tensor = { buffer: gpu.upload(`${proj}[${first}]`, packWeights(vals, s.dtype)), dtype: s.dtype, shape: [count, rows, cols] };
  return { tensor, firstExpert: first, count };
}

function allocScratch(gpu: Gpu, dims: MoeDims, T: number): MoeScratch {
  const b = moeScratchBytes(dims, T);
  return {
    logits: gpu.buffer('logits', b.logits),
    topkIds: gpu.buffer('topk_ids', b.topkIds),
    topkWeights: gpu.buffer('topk_w', b.topkWeights),
    groups: gpu.buffer('groups', b.groups),
    act: gpu.buffer('act', b.act),
    slotOut: gpu.buffer('slot_out', b.slotOut),
  };
}

function freeScratch(gpu: Gpu, s: MoeScratch): void {
  gpu.destroy(s.logits, s.topkIds, s.topkWeights, s.groups, s.act, s.slotOut);
}

function freeWeights(gpu: Gpu, w: MoeExpertWeights): void {
  for (const list of [w.gate, w.up, w.gateUp, w.down]) for (const c of list ?? []) gpu.destroy(c.tensor.buffer);
}

for (const variant of EXPERT_VARIANTS) {
  for (const T of [1, 7, 50]) {
    test.serial(`moe-experts - routed layer matches float64 (T ${T}, 6 experts top-2, hidden 40, inter 24, bf16, ${variant})`, async (t) => {
      const gpu = await testGpu();
      const E = 6, k = 2, H = 40, I = 24, dtype = 'bf16' as const;
      const moe = moeCfg({ nRoutedExperts: E, numExpertsPerTok: k, topkMethod: 'greedy', moeIntermediateSize: I, routedScalingFactor: 1.5 });
      const s: ExpertSetup = { E, k, H, I, dtype, experts: makeExperts(E, H, I, dtype, 1000 + T) };
      const gate = roundTo(randomArray(E * H, 77 + T, 0.8), dtype);
      const x = roundTo(randomArray(T * H, 55 + T, 1), 'f32');
      const ref = moeLayer({ hiddenSize: H, moe } as unknown as MlaConfig, { gate, eScoreCorrectionBias: null, experts: s.experts, sharedExperts: null } satisfies MoeWeights, x);

      const dims = { nExperts: E, topK: k, hidden: H, intermediate: I };
      const weights: MoeExpertWeights = { gate: [chunk(gpu, s, 'gate', 0, E)], up: [chunk(gpu, s, 'up', 0, E)], down: [chunk(gpu, s, 'down', 0, E)] };
      const gw = uploadWeight(gpu, 'gate', gate, dtype, [E, H]);
      const xb = uploadF32(gpu, 'x', x);
      // accumulate onto a non-zero residual
      const resid = randomArray(T * H, 99, 1);
      const out = uploadF32(gpu, 'out', resid);
      const sc = allocScratch(gpu, dims, T);
      await gpu.run(moeExperts({ dims, tokens: T, x: xb, weights, scratch: sc, route: { routing: moeRouting(moe), gateWeight: gw, bias: null }, out, accumulate: true, variant }));
      const ids = await gpu.readU32(sc.topkIds, 0, T * k);
      ref.routes.forEach((r, tok) => t.deepEqual([...ids.subarray(tok * k, tok * k + k)], r.expertIds, `token ${tok} routing`));
      const got = await gpu.readF32(out, 0, T * H);
      const resid32 = Float32Array.from(resid);
      const want = ref.output.map((v, i) => v + resid32[i]!);
      const err = maxAbsDiff(got, want);
      t.true(err < tolOf(variant), `max error ${err}`);
      freeScratch(gpu, sc);
      freeWeights(gpu, weights);
      destroyAll(gpu, gw, xb, out);
    });
  }
}

/**
 * A routed layer (6 experts top-2, bf16) over T normed tokens of width H, its float64 reference, and a runner: the
 * experts with the router (norm, logits, selection) on the GPU under `limits` (none: the logits kernel).
 */
async function routerCase(H: number, T: number, seed: number, gateScale: number) {
  const gpu = await testGpu();
  const E = 6, k = 2, I = 24, dtype = 'bf16' as const, eps = 1e-6;
  const moe = moeCfg({ nRoutedExperts: E, numExpertsPerTok: k, topkMethod: 'greedy', moeIntermediateSize: I, routedScalingFactor: 1.5 });
  const s: ExpertSetup = { E, k, H, I, dtype, experts: makeExperts(E, H, I, dtype, seed) };
  const gate = roundTo(randomArray(E * H, seed + 1, gateScale), dtype);
  const normW = roundTo(randomArray(H, seed + 2, 0.5).map((v) => 1 + v), dtype);
  const resid = roundTo(randomArray(T * H, seed + 3, 1), 'f32');
  const ref = moeLayer({ hiddenSize: H, moe } as unknown as MlaConfig, { gate, eScoreCorrectionBias: null, experts: s.experts, sharedExperts: null } satisfies MoeWeights, rmsNorm(resid, normW, eps));
  const dims = { nExperts: E, topK: k, hidden: H, intermediate: I };
  const weights: MoeExpertWeights = { gate: [chunk(gpu, s, 'gate', 0, E)], up: [chunk(gpu, s, 'up', 0, E)], down: [chunk(gpu, s, 'down', 0, E)] };
  const gw = uploadWeight(gpu, 'gate', gate, dtype, [E, H]);
  const nw = uploadWeight(gpu, 'norm', normW, dtype, [H]);
  const xr = uploadF32(gpu, 'resid', resid);
  const run = async (limits?: MatmulLimits) => {
    const xn = gpu.buffer('xn', T * H * 4);
    const out = gpu.buffer('out', T * H * 4);
    const sc = allocScratch(gpu, dims, T);
    const programs = moeExperts({
      dims, tokens: T, x: xn, weights, scratch: sc, route: { routing: moeRouting(moe), gateWeight: gw, bias: null }, out,
      prenorm: { x: xr, weight: nw, eps }, ...(limits ? { matmulLimits: limits } : {}),
    });
    await gpu.run(programs);
    const ids = await gpu.readU32(sc.topkIds, 0, T * k);
    const y = await gpu.readF32(out, 0, T * H);
    freeScratch(gpu, sc);
    destroyAll(gpu, xn, out);
    return { ids, y, labels: programs.map((p) => p.shader.label) };
  };
  const dispose = () => {
    freeWeights(gpu, weights);
    destroyAll(gpu, gw, nw, xr);
  };
  return { gpu, k, ref, run, dispose };
}

test.serial('moe-experts - from ROUTER_GEMM_MIN_TOKENS tokens the router logits are the f32 GEMM\'s after the norm: float64\'s routing and output, as the logits kernel', async (t) => {
  const c = await routerCase(40, ROUTER_GEMM_MIN_TOKENS + 13, 4100, 0.8);
  const viaGemm = await c.run(c.gpu.matmulLimits), viaKernel = await c.run();
  t.true(viaGemm.labels.some((l) => l.startsWith('matmul_')), 'the logits are a matmul');
  t.false(viaKernel.labels.some((l) => l.startsWith('matmul_')), 'the logits kernel');
  c.ref.routes.forEach((r, tok) => t.deepEqual([...viaGemm.ids.subarray(tok * c.k, tok * c.k + c.k)], r.expertIds, `token ${tok} routing`));
  t.deepEqual(viaGemm.ids, viaKernel.ids);
  const err = maxAbsDiff(viaGemm.y, c.ref.output);
  t.true(err < 1e-4, `max error ${err}`);
  t.true(maxAbsDiff(viaGemm.y, viaKernel.y) < 1e-5);
  c.dispose();
});

test.serial('moe-experts - below ROUTER_GEMM_MIN_TOKENS by MOE_ROUTER_GEMM_MIN_TOKENS, the router GEMM split over K: float64\'s routing and output', async (t) => {
  // H = 256: the f32 GEMM's 32-deep slabs make 8 trips, 2 splits where the device has idle slots (told here: 64)
  const c = await routerCase(256, 20, 4200, 0.3);
  const got = await c.run({ ...c.gpu.matmulLimits, routerGemmMinTokens: 16, workgroupSlots: 64, splitKMax: 4 });
  t.true(got.labels.some((l) => l.startsWith('matmul_split_reduce')), 'the logits GEMM is split');
  c.ref.routes.forEach((r, tok) => t.deepEqual([...got.ids.subarray(tok * c.k, tok * c.k + c.k)], r.expertIds, `token ${tok} routing`));
  const err = maxAbsDiff(got.y, c.ref.output);
  t.true(err < 1e-4, `max error ${err}`);
  c.dispose();
});

/** Runs the expert path from given routing (ids/weights) and returns out [T, H]. */
async function runExperts(
  gpu: Gpu, s: ExpertSetup, weights: MoeExpertWeights, x: Float64Array, T: number, ids: Uint32Array, wts: Float32Array, variant: MoeGemmVariant, gateUpSplits?: number,
  groupTiles?: { gateUp: number; down: number }, linearRows = false,
): Promise<Float32Array> {
  const dims = { nExperts: s.E, topK: s.k, hidden: s.H, intermediate: s.I };
  const sc = allocScratch(gpu, dims, T);
  gpu.write(sc.topkIds, ids);
  gpu.write(sc.topkWeights, wts);
  const xb = uploadF32(gpu, 'x', x);
  const out = gpu.buffer('out', T * s.H * 4);
  // rows in order: limits saying so (and no grouped order, which the limits would otherwise bring)
  const matmulLimits: MatmulLimits | undefined = linearRows ? { ...gpu.matmulLimits, linearStagingRows: true, moeGroupTiles: 0 } : undefined;
  await gpu.run(moeExperts({ dims, tokens: T, x: xb, weights, scratch: sc, out, variant, gateUpSplits, ...(groupTiles ? { groupTiles } : {}), ...(matmulLimits ? { matmulLimits } : {}) }));
  const got = await gpu.readF32(out, 0, T * s.H);
  freeScratch(gpu, sc);
  destroyAll(gpu, xb, out);
  return got;
}

function refExperts(s: ExpertSetup, x: Float64Array, T: number, ids: Uint32Array, wts: Float32Array): Float64Array {
  const out = new Float64Array(T * s.H);
  for (let tok = 0; tok < T; tok++) {
    for (let j = 0; j < s.k; j++) {
      const y = siluMlp(row(x, s.H, tok), s.experts[ids[tok * s.k + j]!]!, s.H);
      for (let h = 0; h < s.H; h++) out[tok * s.H + h] += wts[tok * s.k + j]! * y[h]!;
    }
  }
  return out;
}

/** Random distinct experts per token drawn from `allowed`, with random weights. */
function randomRouting(T: number, k: number, allowed: number[], seed: number): { ids: Uint32Array; wts: Float32Array } {
  const r = rng(seed);
  const ids = new Uint32Array(T * k);
  const wts = new Float32Array(T * k);
  for (let tok = 0; tok < T; tok++) {
    const pool = [...allowed];
    for (let j = 0; j < k; j++) {
      ids[tok * k + j] = pool.splice(Math.floor(r() * pool.length), 1)[0]!;
      wts[tok * k + j] = 0.1 + r();
    }
  }
  return { ids, wts };
}

for (const variant of EXPERT_VARIANTS) {
  test.serial(`moe-experts - tokens routed to a subset of experts; chunked and fused layouts agree bitwise (${variant})`, async (t) => {
    const gpu = await testGpu();
    const E = 16, k = 3, H = 64, I = 48, dtype = 'f16' as const, T = variant.startsWith('gemv') ? 33 : 150;
    const s: ExpertSetup = { E, k, H, I, dtype, experts: makeExperts(E, H, I, dtype, 5000) };
    const x = roundTo(randomArray(T * H, 4242, 1), 'f32');
    // only experts 2, 3, 9, 10, 15 receive tokens (expert 15 in the last chunk, 9/10 across a chunk boundary)
    const { ids, wts } = randomRouting(T, k, [2, 3, 9, 10, 15], 31);
    const want = refExperts(s, x, T, ids, wts);

    const whole: MoeExpertWeights = { gate: [chunk(gpu, s, 'gate', 0, E)], up: [chunk(gpu, s, 'up', 0, E)], down: [chunk(gpu, s, 'down', 0, E)] };
    const split: MoeExpertWeights = {
      gate: [chunk(gpu, s, 'gate', 0, 6), chunk(gpu, s, 'gate', 6, 10)],
      up: [chunk(gpu, s, 'up', 0, 10), chunk(gpu, s, 'up', 10, 6)],
      down: [chunk(gpu, s, 'down', 0, 9), chunk(gpu, s, 'down', 9, 7)],
    };
    const fused: MoeExpertWeights = { gateUp: [chunk(gpu, s, 'gateUp', 0, 10), chunk(gpu, s, 'gateUp', 10, 6)], down: [chunk(gpu, s, 'down', 0, E)] };
    const a = await runExperts(gpu, s, whole, x, T, ids, wts, variant);
    const b = await runExperts(gpu, s, split, x, T, ids, wts, variant);
    const c = await runExperts(gpu, s, fused, x, T, ids, wts, variant);
    const err = maxAbsDiff(a, want);
    t.log(`${variant}: max error ${err.toExponential(2)}`);
    t.true(err < tolOf(variant), `max error ${err}`);
    t.deepEqual(b, a, 'two chunks per projection = one chunk');
    t.deepEqual(c, a, 'fused gate_up = separate gate and up');
    for (const w of [whole, split, fused]) freeWeights(gpu, w);
  });
}

// The one-row-tile GEMV sums every row as the 8-row one does: the same output, bit for bit, with one and many rows an expert
test.serial('moe-experts - the one-row GEMV (gemv1) equals the 8-row one bit for bit', async (t) => {
  const gpu = await testGpu();
  const E = 8, k = 2, H = 72, I = 40, dtype = 'bf16' as const;
  const s: ExpertSetup = { E, k, H, I, dtype, experts: makeExperts(E, H, I, dtype, 6000) };
  const weights: MoeExpertWeights = { gate: [chunk(gpu, s, 'gate', 0, E)], up: [chunk(gpu, s, 'up', 0, E)], down: [chunk(gpu, s, 'down', 0, E)] };
  for (const T of [1, 3, 19]) {
    const x = roundTo(randomArray(T * H, 77 + T, 1), 'f32');
    const { ids, wts } = randomRouting(T, k, [0, 1, 2, 3, 4, 5, 6, 7], 40 + T);
    t.deepEqual(await runExperts(gpu, s, weights, x, T, ids, wts, 'gemv1'), await runExperts(gpu, s, weights, x, T, ids, wts, 'gemv'), `${T} tokens`);
  }
  freeWeights(gpu, weights);
});

// One token: the down GEMV adds the combine itself (expert-gemv-down-combine.wgsl), each slot's sum and the slots'
// order those of the down kernel then the combine, so the output is theirs bit for bit: lanes summed through
// workgroup memory, and by subgroup shuffles where the device runs one subgroup size (32 on NVIDIA; lavapipe's 8
// lanes take the other path). I = 40 and 1000 leave K tails of 40 and 232 past the 256-value steps.
for (const dtype of ['bf16', 'f16', 'f32'] as const) {
  test.serial(`moe-experts - one token's down GEMV with the combine in it equals the down GEMV then the combine, bit for bit (${dtype})`, async (t) => {
    const gpu = await testGpu();
    const E = 9, k = 4, H = 72;
    for (const I of [40, 1000]) {
      const s: ExpertSetup = { E, k, H, I, dtype, experts: makeExperts(E, H, I, dtype, 7000 + I) };
      const weights: MoeExpertWeights = { gateUp: [chunk(gpu, s, 'gateUp', 0, E)], down: [chunk(gpu, s, 'down', 0, E)] };
      const dims = { nExperts: E, topK: k, hidden: H, intermediate: I };
      const x = roundTo(randomArray(H, 81 + I, 1), 'f32');
      const { ids, wts } = randomRouting(1, k, [0, 1, 2, 3, 4, 5, 6, 7, 8], 50 + I);
      const resid = roundTo(randomArray(H, 82 + I, 2), 'f32');
      const sizes = gpu.uniformSubgroupSize === 32 ? [undefined, 32] : [undefined];
      for (const subgroupSize of sizes) {
        const run = async (moeDownCombine: boolean) => {
          const sc = allocScratch(gpu, dims, 1);
          gpu.write(sc.topkIds, ids);
          gpu.write(sc.topkWeights, wts);
          const xb = uploadF32(gpu, 'x', x), out = uploadF32(gpu, 'out', resid);
          const limits: MatmulLimits = { ...gpu.matmulLimits, moeDownCombine, subgroupSize };
          const programs = moeExperts({ dims, tokens: 1, x: xb, weights, scratch: sc, out, accumulate: true, variant: 'gemv1', matmulLimits: limits });
          await gpu.run(programs);
          const y = await gpu.readU32(out, 0, H);
          freeScratch(gpu, sc);
          destroyAll(gpu, xb, out);
          return { y, labels: programs.map((p) => p.shader.label) };
        };
        const apart = await run(false), together = await run(true);
        const how = `I ${I}, ${subgroupSize ? 'subgroup shuffles' : 'workgroup memory'}`;
        t.true(apart.labels.some((l) => l.startsWith('moe_combine')) && !together.labels.some((l) => l.startsWith('moe_combine')), `one dispatch fewer (${how})`);
        t.true(together.labels.some((l) => l.startsWith('moe_down_combine')), `the down-combine kernel runs (${how})`);
        t.deepEqual(together.y, apart.y, how);
        const want = refExperts(s, x, 1, ids, wts);
        const got = new Float32Array(together.y.buffer, together.y.byteOffset, H).map((v, h) => v - resid[h]!);
        t.true(maxAbsDiff(got, want) < 1e-4, `float64's layer output (${how})`);
      }
      freeWeights(gpu, weights);
    }
  });
}

// Below one row an expert the gate/up kernel may split K over workgroups (grid z), leaving each range's gate and up
// sums for the down kernel to add and gate. Subgroup-matrix forms only.
for (const variant of EXPERT_VARIANTS.filter((v) => v.startsWith('mma'))) {
  test.serial(`moe-experts - gate/up split over K matches float64 and the unsplit kernel (${variant})`, async (t) => {
    const gpu = await testGpu();
    // H = 200: 4 slabs of 64 (mma16n64) or 7 of 32 (x2, mma), so 3 splits leave a short last range
    const E = 16, k = 3, H = 200, I = 48, dtype = 'bf16' as const;
    const s: ExpertSetup = { E, k, H, I, dtype, experts: makeExperts(E, H, I, dtype, 7000) };
    const weights: MoeExpertWeights = { gate: [chunk(gpu, s, 'gate', 0, E)], up: [chunk(gpu, s, 'up', 0, E)], down: [chunk(gpu, s, 'down', 0, E)] };
    for (const T of [1, 5]) {
      const x = roundTo(randomArray(T * H, 7100 + T, 1), 'f32');
      const { ids, wts } = randomRouting(T, k, [...Array(E).keys()], 7200 + T);
      const want = refExperts(s, x, T, ids, wts);
      const whole = await runExperts(gpu, s, weights, x, T, ids, wts, variant, 1);
      for (const splits of [2, 3]) {
        const got = await runExperts(gpu, s, weights, x, T, ids, wts, variant, splits);
        const err = maxAbsDiff(got, want);
        t.log(`${variant} T ${T}, ${splits} splits: max error ${err.toExponential(2)}, against unsplit ${maxAbsDiff(got, whole).toExponential(2)}`);
        t.true(err < MMA_TOL, `T ${T}, ${splits} splits: max error ${err}`);
      }
    }
    freeWeights(gpu, weights);
  });
}

test.serial('moe-experts - several tiles per expert and a skewed load (every token on expert 0)', async (t) => {
  const gpu = await testGpu();
  const E = 5, k = 2, H = 24, I = 16, dtype = 'bf16' as const, T = 140;
  const s: ExpertSetup = { E, k, H, I, dtype, experts: makeExperts(E, H, I, dtype, 900) };
  const x = roundTo(randomArray(T * H, 901, 1), 'f32');
  const ids = new Uint32Array(T * k);
  const wts = new Float32Array(T * k);
  for (let tok = 0; tok < T; tok++) {
    ids[tok * k] = 0;
    ids[tok * k + 1] = 1 + (tok % 4);
    wts[tok * k] = 0.75;
    wts[tok * k + 1] = 0.5 + tok / T;
  }
  const want = refExperts(s, x, T, ids, wts);
  const weights: MoeExpertWeights = { gate: [chunk(gpu, s, 'gate', 0, E)], up: [chunk(gpu, s, 'up', 0, E)], down: [chunk(gpu, s, 'down', 0, E)] };
  for (const variant of EXPERT_VARIANTS) {
    const got = await runExperts(gpu, s, weights, x, T, ids, wts, variant);
    t.true(maxAbsDiff(got, want) < tolOf(variant), `${variant}: ${maxAbsDiff(got, want)}`);
  }
  freeWeights(gpu, weights);
});

// 9 experts, top-3 of 300 tokens: ~100 rows an expert, several tiles each on every form, and several column blocks;
// its weights uploaded, its routing and the float64 reference
function tiledCase(gpu: Gpu, seed: number) {
  const E = 9, k = 3, H = 200, I = 144, dtype = 'bf16' as const, T = 300;
  const s: ExpertSetup = { E, k, H, I, dtype, experts: makeExperts(E, H, I, dtype, seed) };
  const weights: MoeExpertWeights = { gate: [chunk(gpu, s, 'gate', 0, E)], up: [chunk(gpu, s, 'up', 0, E)], down: [chunk(gpu, s, 'down', 0, E)] };
  const x = roundTo(randomArray(T * H, seed + 1, 1), 'f32');
  const { ids, wts } = randomRouting(T, k, [...Array(E).keys()], seed + 2);
  return { s, weights, x, T, ids, wts, want: refExperts(s, x, T, ids, wts) };
}

// The staging rows only change which lane stages which slab row (staging-rows.ts): the same sums, bit for bit.
for (const variant of EXPERT_VARIANTS.filter((v) => v.startsWith('mma'))) {
  test.serial(`moe-experts - staging rows spread over the banks (the default) equal rows in order bit for bit (${variant})`, async (t) => {
    const gpu = await testGpu();
    const { s, weights, x, T, ids, wts, want } = tiledCase(gpu, 7500);
    // all 300 tokens whole, and the first 5 with gate/up split 3 ways over K (its act scratch holds splits of few rows)
    for (const [n, splits] of [[T, 1], [5, 3]] as const) {
      const [xn, idn, wtn] = [x.subarray(0, n * s.H), ids.subarray(0, n * s.k), wts.subarray(0, n * s.k)];
      const spread = await runExperts(gpu, s, weights, xn, n, idn, wtn, variant, splits);
      const linear = await runExperts(gpu, s, weights, xn, n, idn, wtn, variant, splits, undefined, true);
      t.is(spread.filter((v, i) => !Object.is(v, linear[i])).length, 0, `${n} tokens, ${splits} gate/up splits: outputs that differ from rows in order`);
      const ref = n === T ? want : refExperts(s, xn, n, idn, wtn);
      t.true(maxAbsDiff(spread, ref) < MMA_TOL, `${n} tokens, ${splits} gate/up splits: max error ${maxAbsDiff(spread, ref)}`);
    }
    freeWeights(gpu, weights);
  });
}

// The grouped order only changes which workgroup takes which (tile, column block): the same sums, bit for bit.
for (const variant of EXPERT_VARIANTS.filter((v) => v.startsWith('mma') && !v.endsWith('cf'))) {
  test.serial(`moe-experts - tiles in grouped order (groups of 1, 2 and 5 tiles, a ragged last group) equal tiles first bit for bit and match float64 (${variant})`, async (t) => {
    const gpu = await testGpu();
    const { s, weights, x, T, ids, wts, want } = tiledCase(gpu, 7300);
    const plain = await runExperts(gpu, s, weights, x, T, ids, wts, variant);
    for (const g of [1, 2, 5]) {
      const got = await runExperts(gpu, s, weights, x, T, ids, wts, variant, undefined, { gateUp: g, down: g });
      t.is(got.filter((v, i) => !Object.is(v, plain[i])).length, 0, `groups of ${g}: outputs that differ from tiles first`);
      t.true(maxAbsDiff(got, want) < MMA_TOL, `groups of ${g}: max error ${maxAbsDiff(got, want)}`);
    }
    freeWeights(gpu, weights);
  });
}

test.serial('moe-experts - V3-style routing end to end (noaux_tc, 32 experts in 4 groups, top-4, f32 weights)', async (t) => {
  const gpu = await testGpu();
  const E = 32, k = 4, H = 32, I = 16, dtype = 'f32' as const, T = 9;
  const moe = moeCfg({ nRoutedExperts: E, numExpertsPerTok: k, topkMethod: 'noaux_tc', nGroup: 4, topkGroup: 2, normTopkProb: true, routedScalingFactor: 2.5, moeIntermediateSize: I });
  const s: ExpertSetup = { E, k, H, I, dtype, experts: makeExperts(E, H, I, dtype, 3000) };
  const gate = roundTo(randomArray(E * H, 3001, 0.5), 'bf16');
  const bias = roundTo(randomArray(E, 3002, 0.2), 'f32');
  const x = roundTo(randomArray(T * H, 3003, 1), 'f32');
  const ref = moeLayer({ hiddenSize: H, moe } as unknown as MlaConfig, { gate, eScoreCorrectionBias: bias, experts: s.experts, sharedExperts: null }, x);
  const dims = { nExperts: E, topK: k, hidden: H, intermediate: I };
  const weights: MoeExpertWeights = { gate: [chunk(gpu, s, 'gate', 0, E)], up: [chunk(gpu, s, 'up', 0, E)], down: [chunk(gpu, s, 'down', 0, E)] };
  const gw = uploadWeight(gpu, 'gate', gate, 'bf16', [E, H]);
  const bb = uploadWeight(gpu, 'bias', bias, 'f32', [E]);
  const xb = uploadF32(gpu, 'x', x);
  const out = gpu.buffer('out', T * H * 4);
  const sc = allocScratch(gpu, dims, T);
  await gpu.run(moeExperts({ dims, tokens: T, x: xb, weights, scratch: sc, route: { routing: moeRouting(moe), gateWeight: gw, bias: bb }, out }));
  const got = await gpu.readF32(out, 0, T * H);
  const err = maxAbsDiff(got, ref.output);
  t.true(err < 1e-4, `max error ${err}`);
  freeScratch(gpu, sc);
  freeWeights(gpu, weights);
  destroyAll(gpu, gw, bb, xb, out);
});

test.serial('moe-experts - rejects scratch that is too small and misaligned sizes', (t) => {
  const dims = { nExperts: 4, topK: 2, hidden: 16, intermediate: 8 };
  const fake = { size: 16 } as GPUBuffer;
  const sc: MoeScratch = { topkIds: fake, topkWeights: fake, groups: fake, act: fake, slotOut: fake };
  const tensor = { buffer: fake, dtype: 'bf16' as const, shape: [4, 8, 16] };
  const weights: MoeExpertWeights = { gate: [{ tensor, firstExpert: 0, count: 4 }], up: [{ tensor, firstExpert: 0, count: 4 }], down: [{ tensor: { ...tensor, shape: [4, 16, 8] }, firstExpert: 0, count: 4 }] };
  t.throws(() => moeExperts({ dims, tokens: 8, x: fake, weights, scratch: sc, out: fake }), { message: /scratch too small/ });
  t.throws(() => moeExperts({ dims: { ...dims, hidden: 20 }, tokens: 1, x: fake, weights, scratch: sc, out: fake }), { message: /multiples of 8/ });
  // the grouped order is the subgroup-matrix forms' (a columns-first down has its own), a whole number of tiles
  t.throws(() => moeGateUpShader({ nExperts: 4, gateDtype: 'bf16', upDtype: 'bf16', variant: 'gemv', groupTiles: 4 }), { message: /only the subgroup-matrix forms/ });
  t.throws(() => moeDownShader({ nExperts: 4, dtype: 'bf16', variant: 'mma128cf', groupTiles: 4 }), { message: /columns-first/ });
  t.throws(() => moeDownShader({ nExperts: 4, dtype: 'bf16', variant: 'mma128', groupTiles: 1.5 }), { message: /groupTiles 1.5/ });
});

test('moe-experts - the GEMM form by rows per expert: GEMV below MOE_MMA_MIN_ROWS on tensor-core devices (16-row tiles below 32, 128-row ones from 128 where they fit), below 24 elsewhere, one-row tiles below one row', (t) => {
  const dims = { nExperts: 64, topK: 6, hidden: 2048, intermediate: 1408 };
  // rows per expert = tokens · 6 / 64: batch 1 → 0.09, 16 → 1.5, 64 → 6, 256 → 24
  t.is(moeGemmVariant(dims, 1, true), 'gemv1');
  t.is(moeGemmVariant(dims, 1, true, 0), 'mma16n64x2');
  t.is(moeGemmVariant(dims, 10, true), 'gemv1');
  t.is(moeGemmVariant(dims, 11, true), 'mma16n64x2');
  t.is(moeGemmVariant(dims, 1, false), 'gemv1');
  t.is(moeGemmVariant(dims, 10, false), 'gemv1');
  t.is(moeGemmVariant(dims, 11, false), 'gemv');
  t.is(moeGemmVariant(dims, 11, true, 8), 'gemv');
  t.is(moeGemmVariant(dims, 16, true), 'mma16n64x2');
  t.is(moeGemmVariant(dims, 64, true), 'mma16n64x2');
  t.is(moeGemmVariant(dims, 512, true), 'mma');
  t.is(moeGemmVariant(dims, 64, true, 8), 'gemv');
  t.is(moeGemmVariant(dims, 64, false), 'gemv');
  t.is(moeGemmVariant(dims, 256, false), 'tiled');
  t.is(moeGemmVariant(dims, 256, true, 100), 'gemv');
  t.is(moeGemmVariant(dims, 4096, true), 'mma');
  // 128 rows an expert (from 1366 tokens here) take the 128-row tiles where the device holds their workgroups
  // (47 KiB of workgroup memory, 256 invocations); WebGPU's default limits do not
  const big = { maxComputeWorkgroupStorageSize: 49152, maxComputeInvocationsPerWorkgroup: 1024 };
  t.is(moeGemmVariant(dims, 1365, true, undefined, big), 'mma');
  t.is(moeGemmVariant(dims, 1366, true, undefined, big), 'mma128d256');
  t.is(moeGemmVariant(dims, 4096, true, undefined, big), 'mma128d256');
  t.is(moeGemmVariant(dims, 4096, true, undefined, { ...big, maxComputeWorkgroupStorageSize: 32768 }), 'mma');
  t.is(moeGemmVariant(dims, 4096, true, undefined, { ...big, maxComputeInvocationsPerWorkgroup: 128 }), 'mma');
  t.is(moeGemmVariant(dims, 4096, false, undefined, big), 'tiled');
});
