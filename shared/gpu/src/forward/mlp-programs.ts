// The feed-forward half of a layer: a SiLU-gated MLP (dense layers and shared experts) and DeepSeekMoE's
// routed experts, each adding into the residual stream. At decode sizes (M ≤ FUSED_GEMV_MAX_M) a dense MLP is 2
// dispatches (norm + gate ‖ up, silu·mul + down) and a MoE layer 5 (moePrograms); larger batches run a dispatch per kernel.
import type { BufferSource } from '../runtime/buffer-pool.js';
import type { KernelProgram } from '../runtime/program.js';
import type { MlaConfig } from '@latentwire/model';
import type { MlpWeights, MoeWeights } from '../weights/model-weights.js';
import { matmulPrograms, type MatmulArgs, type MatmulLimits } from '../kernels/matmul/matmul.js';
import { siluMul } from '../kernels/silu-mul/silu-mul.js';
import { rmsNorm } from '../kernels/rms-norm/rms-norm.js';
import { fusedGemv, type FusedGemvOutput } from '../kernels/matmul/gemv-fused.js';
import type { GpuTensor } from '../kernels/weight-dtype.js';
import { moeExperts, moeRouting, moeScratchBytes, type MoeDims, type MoeScratch, type MoeScratchBytes } from '../kernels/moe/index.js';

export interface MlpBuffers {
  /** Normalized input [rows, H]. */
  readonly x: GPUBuffer;
  /** Residual stream [rows, H], accumulated into. */
  readonly out: GPUBuffer;
  /** Scratch [rows, 2·inter] for gate ‖ up, and [rows, inter] for the gated product. */
  readonly gateUp: GPUBuffer;
  readonly gated: GPUBuffer;
  readonly rows: number;
  readonly H: number;
  readonly inter: number;
  /** Split-K partial sums for the GEMMs of batches whose tiles leave the device idle (ForwardScratch.splitK). */
  readonly splitK?: GPUBuffer | null;
}

/** The matmul's dispatches, split over K where the launcher finds it worth it and `scratch` is given. */
export function splitMatmul(a: MatmulArgs, scratch: GPUBuffer | null | undefined, limits: MatmulLimits): KernelProgram[] {
  return matmulPrograms(scratch ? { ...a, splitK: { scratch } } : a, limits);
}

/** The MLP's input still to be normalized: b.x = RMSNorm(x) · weight. */
export interface MlpPrenorm {
  readonly x: GPUBuffer;
  readonly weight: GpuTensor;
  readonly eps: number;
}

/**
 * out += down(silu(gate(x)) · up(x)), with x = RMSNorm(prenorm.x) first where given. Gate and up are one
 * product over their stacked weight; at decode sizes a GEMV with the norm in its prologue, and the down GEMV
 * reads silu(gate)·up itself: 2 dispatches, else the norm, gate ‖ up, silu·mul and down.
 */
export function mlpPrograms(w: MlpWeights, b: MlpBuffers, limits: MatmulLimits, prenorm?: MlpPrenorm): KernelProgram[] {
  const down = fusedGemv({ x: b.gateUp, M: b.rows, K: b.inter, silu: true, outputs: [{ weight: w.down, y: b.out, N: b.H }], accumulate: true }, limits);
  return [...mlpGateUp(w, b, limits, prenorm), ...(down ? [down] : mlpDown(w, b, limits))];
}

/** The product gate ‖ up [rows, 2·inter] (the stacked weight's rows), into b.gateUp. */
function gateUpOutput(w: MlpWeights, b: MlpBuffers): FusedGemvOutput {
  return { weight: w.gateUp, y: b.gateUp, N: 2 * b.inter };
}

/** gate ‖ up [rows, 2·inter] of the MLP's (normed) input: one GEMV at decode sizes (the norm in it), else one GEMM. */
function mlpGateUp(w: MlpWeights, b: MlpBuffers, limits: MatmulLimits, prenorm?: MlpPrenorm): KernelProgram[] {
  const { rows: M, H } = b;
  const out = gateUpOutput(w, b);
  const fused = fusedGemv({ x: prenorm?.x ?? b.x, M, K: H, ...(prenorm ? { norm: prenorm } : {}), outputs: [out] }, limits);
  if (fused) return [fused];
  return [
    ...(prenorm ? [rmsNorm({ x: prenorm.x, weight: prenorm.weight, y: b.x, rows: M, cols: H, eps: prenorm.eps })] : []),
    ...splitMatmul({ x: b.x, weight: out.weight, y: out.y, M, N: out.N, K: H }, b.splitK, limits),
  ];
}

/** The unfused down half: silu·mul, then out += down(gated). */
function mlpDown(w: MlpWeights, b: MlpBuffers, limits: MatmulLimits): KernelProgram[] {
  const { rows: M, H, inter: I } = b;
  return [
    siluMul({ gate: b.gateUp, y: b.gated, rows: M, cols: I }),
    ...splitMatmul({ x: b.gated, weight: w.down, y: b.out, M, N: H, K: I, accumulate: true }, b.splitK, limits),
  ];
}

export interface MoeScratchBuffers extends MoeScratch {
  release(): void;
}

function moeDims(cfg: MlaConfig, sharedExperts = 0): MoeDims {
  const moe = cfg.moe!;
  return { nExperts: moe.nRoutedExperts, topK: moe.numExpertsPerTok, hidden: cfg.hiddenSize, intermediate: moe.moeIntermediateSize, sharedExperts };
}

/**
 * Most tokens whose shared experts run with the routed ones where the weights hold them (MoeWeights.routedShared).
 * Measured at V2-Lite decode batches 1 to 64 (bench/results/decode-shared-routed.*: every batch faster, 2% at 1 to
 * 6% at 4 to 64); prefill-sized passes keep the shared MLP's GEMMs, which run the tensor cores at about twice the
 * expert GEMMs' rate on 4096 tokens.
 */
export const MOE_SHARED_ROUTED_MAX_TOKENS = 128;

/** The bytes of each router and expert scratch buffer for up to `tokens` tokens. */
export function moeScratchBytesFor(cfg: MlaConfig, tokens: number): MoeScratchBytes {
  const plain = moeScratchBytes(moeDims(cfg), tokens);
  // passes of up to MOE_SHARED_ROUTED_MAX_TOKENS tokens may route the shared experts: more slots a token
  const routed = moeScratchBytes(moeDims(cfg, cfg.moe!.nSharedExperts), Math.min(tokens, MOE_SHARED_ROUTED_MAX_TOKENS));
  return Object.fromEntries(Object.entries(plain).map(([k, v]) => [k, Math.max(v, routed[k as keyof typeof routed])])) as unknown as MoeScratchBytes;
}

/** Router and expert scratch for up to `tokens` tokens, allocated once per forward. */
export function allocMoeScratch(gpu: BufferSource, cfg: MlaConfig, tokens: number): MoeScratchBuffers {
  const bytes = moeScratchBytesFor(cfg, tokens);
  const b = {
    logits: gpu.buffer('moe.logits', bytes.logits),
    topkIds: gpu.buffer('moe.topk_ids', bytes.topkIds),
    topkWeights: gpu.buffer('moe.topk_weights', bytes.topkWeights),
    groups: gpu.buffer('moe.groups', bytes.groups),
    act: gpu.buffer('moe.act', bytes.act),
    slotOut: gpu.buffer('moe.slot_out', bytes.slotOut),
  };
  return { ...b, release: () => gpu.destroy(...Object.values(b)) };
}

export interface MoeBuffers extends Omit<MlpBuffers, 'H' | 'inter'> {
  readonly scratch: MoeScratch;
}

/**
 * out += shared_experts(x) + Σ_k w_k · expert_k(x), the routed experts chosen on the GPU, with x =
 * RMSNorm(prenorm.x) first where given. Up to MOE_SHARED_ROUTED_MAX_TOKENS rows, weights that hold the shared
 * experts among the routed ones (routedShared: the decode node's) run them in the routed experts' dispatches, each
 * token's last slots with weight 1; at decode sizes (M ≤ FUSED_GEMV_MAX_M) that is 5 dispatches:
 *   1. one GEMV over the residual with the norm in its prologue: writes x for the experts and the router logits
 *      (summed in the GEMV's order, which differs from route-logits.wgsl's by float rounding)
 *   2. selection and grouping (moeSelectGroup)
 *   3. 4. the experts' gate/up and down (one each per expert chunk)
 *   5. the combine
 * With the shared MLP apart (prefill-sized passes, weights without the copy) also 5 at decode sizes: the first
 * GEMV writes the shared experts' gate ‖ up beside the logits, and the last is the shared down GEMV over
 * silu(gate)·up with the routed experts' combine in its epilogue (the same sums in the same order as the combine
 * kernel). Where a GEMV does not apply (more rows, weights of mixed dtypes, too many storage bindings for the
 * device) its part runs as separate dispatches: norm, router logits, selection (+ grouping), [shared gate ‖ up, …],
 * combine.
 */
export function moePrograms(cfg: MlaConfig, w: MoeWeights, b: MoeBuffers, limits: MatmulLimits, prenorm?: MlpPrenorm): KernelProgram[] {
  const moe = cfg.moe!;
  const H = cfg.hiddenSize;
  const sharedBuffers = { ...b, H, inter: moe.moeIntermediateSize * moe.nSharedExperts };
  const logits: FusedGemvOutput | null = b.scratch.logits ? { weight: w.router, y: b.scratch.logits, N: moe.nRoutedExperts } : null;
  const routedShared = b.rows <= MOE_SHARED_ROUTED_MAX_TOKENS ? w.routedShared : 0;
  const shared = routedShared ? null : w.shared;
  const head = prenorm && logits
    ? fusedGemv({
      x: prenorm.x, M: b.rows, K: H, norm: prenorm, normOut: b.x, outputs: shared ? [gateUpOutput(shared, sharedBuffers), logits] : [logits],
    }, limits)
    : null;
  // at decode sizes the shared experts' down GEMV runs last and adds the routed experts' combine in its epilogue
  const downCombined = shared
    ? fusedGemv({
      x: b.gateUp, M: b.rows, K: sharedBuffers.inter, silu: true, outputs: [{ weight: shared.down, y: b.out, N: H }], accumulate: true,
      combine: { slotOut: b.scratch.slotOut, weights: b.scratch.topkWeights, topK: moe.numExpertsPerTok },
    }, limits)
    : null;
  // the shared experts' dispatches the first and last GEMVs leave, run once routing is done
  const sharedRest = !shared ? []
    : head ? (downCombined ? [] : mlpDown(shared, sharedBuffers, limits))
    : downCombined ? mlpGateUp(shared, sharedBuffers, limits) : mlpPrograms(shared, sharedBuffers, limits);
  return [
    ...(head ? [head] : []),
    ...moeExperts({
      dims: moeDims(cfg, routedShared),
      tokens: b.rows,
      x: b.x,
      weights: { gate: w.gate, up: w.up, down: w.down },
      scratch: b.scratch,
      // with the first GEMV, the logits are in scratch and x normed already
      route: { routing: moeRouting(moe), gateWeight: head ? null : w.router, bias: w.routerBias },
      out: b.out,
      accumulate: true,
      subgroupMatrix: limits.subgroupMatrix ?? false,
      mmaMinRows: limits.moeMmaMinRows,
      matmulLimits: limits,
      ...(prenorm && !head ? { prenorm } : {}),
      // the one-workgroup fused router (moeRouteFused) saves 3 dispatches a layer but took 0.28 ms a layer on the
      // H200 at batch 1 (15.7 ms a step, profiled) against ~0.06 for norm, logits, selection and grouping apart:
      // batch 1 fell from 130 to 77 tokens/s with it, so it stays off until its logits spread over workgroups
      fuseRoute: false,
      afterRoute: sharedRest,
      combine: downCombined === null,
    }),
    ...(downCombined ? [downCombined] : []),
  ];
}
