// The shared experts run with the routed ones (MoeWeights.routedShared, moePrograms at decode batch sizes)
// against the same layer with the shared MLP's own dispatches, on odd sizes: copySharedExperts puts exactly the
// shared weights' bytes in the expert stacks, and the layer's output agrees within the expert kernels' rounding.
import test from 'ava';
import { allocMoeScratch, moePrograms } from '../../src/forward/mlp-programs.js';
import { copySharedExperts } from '../../src/weights/shared-experts.js';
import { MOE_ROUTE_FUSED_MAX_TOKENS } from '../../src/kernels/moe/index.js';
import type { ExpertChunk, MoeWeights } from '../../src/weights/model-weights.js';
import { bytesToFloat64, weightBytes, type MlaConfig, type MoeConfig } from '@latentwire/model';
import { roundTo, testGpu, uploadF32, uploadWeight } from '../../src/testing.js';
import { randomArray } from '@latentwire/testing';

const LAYERS: readonly (MoeConfig & { readonly H: number; readonly dtype: 'bf16' | 'f32'; readonly chunk: number })[] = [
  {
    nRoutedExperts: 8, nSharedExperts: 2, numExpertsPerTok: 2, moeIntermediateSize: 16, nGroup: 1, topkGroup: 1, topkMethod: 'greedy',
    scoringFunc: 'softmax', normTopkProb: false, routedScalingFactor: 1.5, firstKDenseReplace: 0, moeLayerFreq: 1, H: 40, dtype: 'bf16', chunk: 10,
  },
  {
    // the stacks in chunks of 5 experts: the shared expert lands in a chunk of its own
    nRoutedExperts: 10, nSharedExperts: 1, numExpertsPerTok: 3, moeIntermediateSize: 24, nGroup: 5, topkGroup: 2, topkMethod: 'noaux_tc',
    scoringFunc: 'sigmoid', normTopkProb: true, routedScalingFactor: 2.5, firstKDenseReplace: 0, moeLayerFreq: 1, H: 48, dtype: 'f32', chunk: 5,
  },
];

for (const moe of LAYERS) {
  test(`moe - shared experts routed with the others equal their own MLP (${moe.topkMethod}, ${moe.nSharedExperts} shared, ${moe.dtype})`, async (t) => {
    const gpu = await testGpu();
    const { H, dtype } = moe, E = moe.nRoutedExperts, S = moe.nSharedExperts, I = moe.moeIntermediateSize, eps = 1e-6;
    const cfg = { hiddenSize: H, moe } as unknown as MlaConfig;
    const values = (n: number, seed: number, scale: number) => roundTo(randomArray(n, seed, scale), dtype);
    // expert stacks of E + S experts in chunks of moe.chunk, the last S left for copySharedExperts (filled with
    // noise first, so a copy that misses shows)
    const stacks = (proj: string, rows: number, cols: number, seed: number): ExpertChunk[] => {
      const chunks: ExpertChunk[] = [];
      for (let first = 0; first < E + S; first += moe.chunk) {
        const count = Math.min(moe.chunk, E + S - first);
        const tensor = uploadWeight(gpu, `${proj}${first}`, values(count * rows * cols, seed + first, 1 / Math.sqrt(cols)), dtype, [count, rows, cols]);
        chunks.push({ tensor, firstExpert: first, count });
      }
      return chunks;
    };
    const sharedGateUp = values(2 * S * I * H, 96, 0.2), sharedDown = values(H * S * I, 98, 0.2);
    const w: MoeWeights = {
      kind: 'moe',
      router: uploadWeight(gpu, 'router', values(E * H, 91, 0.5), dtype, [E, H]),
      routerBias: moe.topkMethod === 'noaux_tc' ? uploadWeight(gpu, 'bias', roundTo(randomArray(E, 92, 0.3), 'f32'), 'f32', [E]) : null,
      gate: stacks('gate', I, H, 100), up: stacks('up', I, H, 200), down: stacks('down', H, I, 300),
      shared: { gateUp: uploadWeight(gpu, 's_gate_up', sharedGateUp, dtype, [2 * S * I, H]), down: uploadWeight(gpu, 's_down', sharedDown, dtype, [H, S * I]) },
      routedShared: S,
    };
    copySharedExperts(gpu, [w]);

    // the copies: expert E + s is rows s·I.. of the shared gate and of the shared up, columns s·I.. of the shared down
    const expertValues = async (chunks: readonly ExpertChunk[], e: number, n: number) => {
      const c = chunks.find((k) => e >= k.firstExpert && e < k.firstExpert + k.count)!;
      const bytes = weightBytes(dtype, n);
      return Array.from(bytesToFloat64(new Uint8Array(await gpu.read(c.tensor.buffer, (e - c.firstExpert) * bytes, bytes)), dtype === 'f32' ? 'F32' : 'BF16'));
    };
    for (let s = 0; s < S; s++) {
      t.deepEqual(await expertValues(w.gate, E + s, I * H), Array.from(sharedGateUp.subarray(s * I * H, (s + 1) * I * H)), `gate of shared expert ${s}`);
      t.deepEqual(await expertValues(w.up, E + s, I * H), Array.from(sharedGateUp.subarray((S + s) * I * H, (S + s + 1) * I * H)), `up of shared expert ${s}`);
      const down = Array.from({ length: H * I }, (_, i) => sharedDown[Math.floor(i / I) * S * I + s * I + (i % I)]!);
      t.deepEqual(await expertValues(w.down, E + s, H * I), down, `down of shared expert ${s}`);
    }

    const norm = uploadWeight(gpu, 'norm', roundTo(randomArray(H, 99, 1.5), 'bf16'), 'bf16', [H]);
    const lim = gpu.matmulLimits;
    for (const M of [3, 13]) {
      const resid = roundTo(randomArray(M * H, 100 + M, 2), 'f32');
      const lane = () => ({
        resid: uploadF32(gpu, 'resid', resid), xn: gpu.buffer('xn', M * H * 4), gateUp: gpu.buffer('gate_up', M * 2 * S * I * 4),
        gated: gpu.buffer('gated', M * S * I * 4), scratch: allocMoeScratch(gpu, cfg, M),
      });
      const run = (l: ReturnType<typeof lane>, weights: MoeWeights) =>
        moePrograms(cfg, weights, { x: l.xn, out: l.resid, gateUp: l.gateUp, gated: l.gated, rows: M, scratch: l.scratch, splitK: null }, lim, { x: l.resid, weight: norm, eps });
      const a = lane(), b = lane();
      const own = run(a, { ...w, routedShared: 0 }), routed = run(b, w);
      // norm + logits (one GEMV at decode sizes), selection + grouping (one dispatch up to MOE_ROUTE_FUSED_MAX_TOKENS
      // tokens), gate/up and down per chunk segment, combine
      const chunks = Math.ceil((E + S) / moe.chunk);
      t.is(routed.length, (M <= MOE_ROUTE_FUSED_MAX_TOKENS ? 3 : 4) + 2 * chunks, `dispatches, M ${M}`);
      // past the fused GEMVs' rows, the shared MLP's own dispatches are gone (below, it hides in the first and last GEMV)
      if (M > MOE_ROUTE_FUSED_MAX_TOKENS) t.true(own.length > routed.length, `the shared MLP's own dispatches (${own.length}) are gone (${routed.length}), M ${M}`);
      await gpu.run([...own, ...routed]);
      t.deepEqual(await gpu.readU32(b.scratch.topkIds, 0, M * (moe.numExpertsPerTok + S)).then((ids) => Array.from(ids).filter((_, i) => i % (moe.numExpertsPerTok + S) >= moe.numExpertsPerTok)),
        Array.from({ length: M * S }, (_, i) => E + (i % S)), `the shared experts take each token's last slots, M ${M}`);
      // the routed experts' kernels sum in their own order (and on tensor cores in f16 operands) where the shared
      // MLP's GEMV / GEMM sums in another: equal within that rounding, relative to the output's scale
      const got = await gpu.readF32(b.resid, 0, M * H), want = await gpu.readF32(a.resid, 0, M * H);
      const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      const off = got.reduce((m, v, i) => Math.max(m, Math.abs(v - want[i]!)), 0) / scale;
      t.true(off <= (lim.subgroupMatrix ? 4e-3 : 1e-5), `layer output, M ${M}: off by ${off} of ${scale}`);
      for (const l of [a, b]) {
        gpu.destroy(l.resid, l.xn, l.gateUp, l.gated);
        l.scratch.release();
      }
    }
    gpu.destroy(norm.buffer, w.router.buffer, w.routerBias?.buffer, w.shared!.gateUp.buffer, w.shared!.down.buffer, ...[w.gate, w.up, w.down].flatMap((c) => c.map((k) => k.tensor.buffer)));
  });
}
