// DeepSeekMoE routed experts on the GPU, with no CPU readback anywhere:
//   1. group (group.wgsl, one workgroup): counts the tokens of each expert, prefix-sums them into a sorted list
//      of (token, slot) assignments and cuts each expert's run into row tiles. With the router, for up to
//      MOE_ROUTE_FUSED_MAX_TOKENS tokens, in the selection's dispatch (select-group.wgsl).
//   2. gate/up + silu·mul (expert-{gemv,tiled}-gate-up.wgsl), one dispatch per expert chunk segment: a
//      workgroup takes one row tile of one expert and a block of intermediate columns → act [T·k, I] (sorted
//      row order).
//   3. down (expert-{gemv,tiled}-down.wgsl), one dispatch per down chunk → slotOut [T·k, hidden] in (token, slot)
//      order.
//   4. combine (combine.wgsl): out[t] (+)= Σ_j topkWeights[t, j] · slotOut[t·k + j] in slot order.
// Shared experts may ride along (MoeDims.sharedExperts): the selection gives every token S more slots, naming
// experts E.. of the weight stacks with weight 1, and from there on they are experts like the others (k and E
// above count them).
// Grids are sized on the host for the worst case of T (tiles of a chunk ≤ ceil(min(T·k, T·count)/TM) +
// min(count, T·k)); workgroups whose tile index lies beyond the chunk's real tiles exit after two reads, so only
// the weights of experts that received tokens are ever read.
//
// Three GEMM forms, chosen per call from T and the device (compile-time variants; `variant` overrides):
//   gemv  — TM = 8 rows per tile, weights streamed once per tile in 16-byte loads, K split over 32 lanes:
//           memory-bound decode and small batches.
//   tiled — TM = 64 rows per tile, 64 columns, K slabs of 16 through workgroup memory, 4×4 register blocks:
//           prefill.
//   mma   — the tiled form's tiles on subgroup matrices (f16 16×16×16 tiles, f32 accumulate; K slabs of 32),
//           where the device has them (expert-mma-*.wgsl).
//
// Expert weights may be split into chunks of consecutive experts, each within one storage binding; gate and up
// chunks need not share boundaries (gate/up is dispatched per segment of the merged boundaries).
import type { KernelProgram, KernelShader } from '../../runtime/program.js';
import { bindings, shaderBuffers } from '../../runtime/bindings.js';
import type { GpuTensor, WeightDtype } from '../weight-dtype.js';
import { moeRouterLogits, moeRouteSelect, ROUTE_LOGITS_LANES, routeSelectPrelude, routeSelectWgsl, type MoeRouting } from './moe-route.js';
import { weightLoadWgsl } from '../weight-dtype.js';
import { defineKernel } from '../../runtime/define-kernel.js';
import { fillWgsl, loadWgsl } from '../../runtime/wgsl-source.js';
import { pair16Wgsl, SUBGROUP_MATRIX_WGSL } from '../../runtime/matrix-caps.js';
import { lanesSumWgsl } from '../../runtime/wgsl-pieces/reductions.js';
import { DEFAULT_MOE_MMA_MIN_ROWS, DEFAULT_ROUTER_GEMM_MIN_TOKENS } from '../../runtime/device.js';
import { rmsNorm } from '../rms-norm/rms-norm.js';
import { matmulPrograms, type MatmulLimits } from '../matmul/matmul.js';
import { stagingRowSpread, stagingRowWgsl } from '../matmul/staging-rows.js';

const sources = new Map<string, string>();
function wgsl(file: string): string {
  let s = sources.get(file);
  if (s === undefined) {
    s = loadWgsl(new URL(`./${file}`, import.meta.url));
    sources.set(file, s);
  }
  return s;
}

/** A run of consecutive experts stacked in one buffer: [count, rows, cols] (the model's ExpertChunk). */
export interface MoeExpertChunk {
  readonly tensor: GpuTensor;
  readonly firstExpert: number;
  readonly count: number;
}

/** Routed expert weights: gate and up [count, I, H] per chunk, or fused gateUp [count, 2I, H]; down [count, H, I]. */
export interface MoeExpertWeights {
  readonly gate?: readonly MoeExpertChunk[];
  readonly up?: readonly MoeExpertChunk[];
  /** transformers 5's fused layout: expert e's gate rows then its up rows. Instead of gate + up. */
  readonly gateUp?: readonly MoeExpertChunk[];
  readonly down: readonly MoeExpertChunk[];
}

export interface MoeDims {
  readonly nExperts: number;
  /** num_experts_per_tok (k). */
  readonly topK: number;
  readonly hidden: number;
  /** moe_intermediate_size. */
  readonly intermediate: number;
  /**
   * Shared experts routed with the others (default 0): experts nExperts.. of the weight chunks, taken by every
   * token in its last slots with weight 1 (the selection writes them), so the expert GEMMs and the combine run
   * them with the routed ones instead of a separate MLP (MoeWeights.routedShared says the chunks hold them).
   */
  readonly sharedExperts?: number;
}

/** The experts the grouping and the GEMMs index: the routed ones, then any shared ones routed with them. */
export function groupedExperts(d: MoeDims): number {
  return d.nExperts + (d.sharedExperts ?? 0);
}

/** The (token, slot) assignments a token makes: its top-k, then the shared experts routed with them. */
export function tokenSlots(d: MoeDims): number {
  return d.topK + (d.sharedExperts ?? 0);
}

export const MOE_GEMM_VARIANTS = ['gemv', 'gemv1', 'tiled', 'mma', 'mma16n64', 'mma16n64x2', 'mma128', 'mma128cf', 'mma128d256'] as const;
export type MoeGemmVariant = (typeof MOE_GEMM_VARIANTS)[number];

interface GemvShape {
  readonly kind: 'gemv';
  readonly TM: number;
  readonly COLS: number;
  readonly LANES: number;
  /** K steps issued back to back: gate/up loads two matrices per step, down one. */
  readonly U_GATE_UP: number;
  readonly U_DOWN: number;
}
interface TiledShape { readonly kind: 'tiled'; readonly TM: number; readonly BN: number; readonly BK: number; readonly RM: number; readonly RN: number }
/**
 * TM rows a tile, BN gate/up columns a workgroup (two weight slabs), BN_DOWN down columns (one slab); SG
 * subgroups (default 4) sit SGM × (SG / SGM) over each block (SGM_DOWN × (SG / SGM_DOWN) over the down block), so a
 * subgroup holds (TM/SGM/16)·(BN·SGM/SG/16) result tiles of gate and of up, and likewise of down.
 */
interface MmaShape {
  readonly kind: 'mma'; readonly TM: number; readonly BN: number; readonly BN_DOWN: number; readonly BK: number; readonly BK_DOWN: number;
  readonly SGM: 1 | 2 | 4;
  /** The down half's (default SGM). */
  readonly SGM_DOWN?: 1 | 2 | 4;
  /**
   * The down grid's x walks the column blocks and y the row tiles (default: x the tiles), so the workgroups that
   * run together share one tile's act rows and one expert's weights, each read from memory about once; tiles
   * first, every act row is read again for each column block, from memory once act outgrows the L2 cache.
   */
  readonly DOWN_COLUMNS_FIRST?: boolean;
  /**
   * Unsplit, gate/up writes act as f16 and down reads it so: the value down's staging rounds it to anyway (so the
   * same products), in half the bytes, which down reads once a column block.
   */
  readonly ACT_F16?: boolean;
  /** Subgroups of 32 a workgroup (default 4). */
  readonly SG?: 4 | 8;
  /** Slabs in flight: the next STAGES slabs' loads are issued before the current one is stored (each set in its own registers). */
  readonly STAGES: 1 | 2;
  /** The same for the down half. */
  readonly STAGES_DOWN: 1 | 2;
}
type GemmShape = GemvShape | TiledShape | MmaShape;

const GEMV: GemvShape = { kind: 'gemv', TM: 8, COLS: 8, LANES: 32, U_GATE_UP: 2, U_DOWN: 4 };
// One row a tile, below one row an expert (batch 1): no empty rows in the sums or the reduction, and twice the
// K steps issued together (gate/up 4; down 8, which at V2-Lite's down K of 1408, under 8 steps of 256, leaves the
// down to its one-step tail loop: the setting measured, moe-gemv1.h100.txt). Each row's sums are the TM = 8
// form's, bit for bit (same lanes, same order).
const GEMV1: GemvShape = { kind: 'gemv', TM: 1, COLS: 8, LANES: 32, U_GATE_UP: 4, U_DOWN: 8 };
// BK 16 measured faster than 32 on the H100 (16.6 vs 26.4 ms for V2-Lite at T = 4096), so the slabs stay small.
const TILED: TiledShape = { kind: 'tiled', TM: 64, BN: 64, BK: 16, RM: 4, RN: 4 };
// 4 subgroups of 32 over the 64 × 64 gate/up block (2 × 2 tiles of 16 each, for gate and for up) and the
// 64 × 128 down block (2 × 4 tiles each): 8 accumulators a subgroup in both (the .wgsl files are written for
// these shapes). With the next slab's loads in flight during the products, measured on the H200 (V2-Lite,
// T = 4096, 26 layers): gate/up 95 ms + down 54 ms, against 145 + 69 ms for 64 × 64 blocks loaded then multiplied.
const MMA: MmaShape = { kind: 'mma', TM: 64, BN: 64, BN_DOWN: 128, BK: 32, BK_DOWN: 32, SGM: 2, STAGES: 1, STAGES_DOWN: 1 };
// Decode batches give an expert a few rows (V2-Lite batch 64: 6 on average), where a 64-row tile multiplies
// mostly empty rows and the weights' bytes are what must stream: 16-row tiles, the 4 subgroups side by side over
// 64 columns (a 16 × 16 tile of gate and of up each; gate/up 29 KiB of workgroup memory at 64-deep slabs).
// Measured on the H200 by bench/moe (one V2-Lite layer, ms for gate/up + down; results/moe.h200.json):
//              batch 1         16              64              128
//   GEMV        0.048 + 0.036   0.314 + 0.297   0.611 + 0.623   1.100 + 1.137
//   16 × 128    0.074 + 0.038   0.309 + 0.177   0.373 + 0.199   0.379 + 0.203   (the earlier default, 64-deep gate/up slabs)
//   16 × 128 ×2 0.080 + 0.046   0.362 + 0.184   0.432 + 0.207   0.437 + 0.210   (two 32-deep slabs in flight)
//   16 × 64     0.048 + 0.026   0.315 + 0.131   0.388 + 0.161   0.426 + 0.169   (64-deep slabs, one in flight)
//   16 × 64 ×2  0.063 + 0.039   0.297 + 0.187   0.361 + 0.209   0.366 + 0.243   (two 32-deep slabs in flight)
// So: down always on 16 × 64 with one 64-deep slab; gate/up on it at batch 1 (below one row an expert), else with
// two 32-deep slabs in flight. Every form stays near 2 TB/s of the 4.4 the card reads at: not the bound yet found.
const MMA16N64: MmaShape = { kind: 'mma', TM: 16, BN: 64, BN_DOWN: 64, BK: 64, BK_DOWN: 64, SGM: 1, STAGES: 1, STAGES_DOWN: 1 };
const MMA16N64X2: MmaShape = { ...MMA16N64, BK: 32, STAGES: 2 };
// Prefill-sized: 128-row tiles, 8 subgroups, so each slab staged once serves twice the products of the 64-row
// form's (the staging, not the products, is what its trips wait on: bench/results/mma-peak.h100.txt). gate/up
// over 128 columns, 2 × 4 subgroups of 64 rows × 32 columns of gate and of up (16 accumulators); down over 128
// columns, 4 × 2 subgroups of 32 × 64 (8). Measured on the H100 (bench:moe, one V2-Lite layer at 4096 tokens,
// 384 rows an expert; moe-prefill-forms.h100.txt): 64-row form 3.01 + 1.96 ms; 128 rows with 4 × 2 subgroups over
// 64 gate/up columns 3.14 + 1.86; this one's gate/up 2.52 (its down with 2 × 4 subgroups: 2.04).
const MMA128: MmaShape = { kind: 'mma', TM: 128, BN: 128, BN_DOWN: 128, BK: 32, BK_DOWN: 32, SGM: 2, SGM_DOWN: 4, SG: 8, STAGES: 1, STAGES_DOWN: 1 };
// The same with down's grid columns first and act in f16 (at 4096 V2-Lite tokens act is 138 MB as f32, read again
// for each of down's 16 column blocks: ~2.2 GB a layer from memory, tiles first): for bench:moe and the tests,
// not a default: on the H200 its down took 2.37 ms a layer against mma128's 1.87 (moe-prefill-forms.h200.txt).
const MMA128CF: MmaShape = { ...MMA128, DOWN_COLUMNS_FIRST: true, ACT_F16: true };
// The same with down over 256 columns, 2 × 4 subgroups of 64 × 64 (16 accumulators, as gate/up): each staged act slab
// serves twice the products (down's staging per product was 1.5 times gate/up's; 38 KiB of workgroup memory). The
// prefill form where it fits: on the H100 (12-07, bench:moe, one V2-Lite layer at 4096 tokens, tiles in groups of 4,
// two rounds; grouped-order-d256.h100.txt) down 1.390 → 1.101 ms a layer (x fastest: 1.769 → 1.226), gate/up the same.
const MMA128D256: MmaShape = { ...MMA128, BN_DOWN: 256, SGM_DOWN: 2 };
// Holding act as f16 here (half its 138 MB at 4096 V2-Lite tokens; down stages it as f16 anyway, so the same bits)
// made down slower, 1.31 ms a layer against 1.10 on the H100 (moe-act16.h100.txt; git show 082b44e): not kept.
/** Average rows an expert from which the 128-row tiles are used. */
const MMA128_MIN_ROWS = 128;
/** Subgroups of an mma shape's workgroup, and how many sit down the rows of a half's block. */
const subgroupsOf = (s: MmaShape) => s.SG ?? 4;
const sgmOf = (s: MmaShape, down: boolean) => (down ? s.SGM_DOWN ?? s.SGM : s.SGM);
/** Average rows an expert below which the 16-row tiles are used. */
const MMA16_MAX_ROWS = 32;
// 128-row tiles (16 accumulators a subgroup, as the dense GEMM's 128 × 128 tile) passed the tests but were
// slower on the H200 at 4096 V2-Lite tokens (384 rows an expert): gate/up 115 vs 95 ms, down 56 vs 54.
/**
 * Most K splits of the gate/up kernel (MoeExpertsArgs.gateUpSplits). A split gate/up leaves each K range's gate
 * and up sums ([splits, T·k, 2I] in the act scratch, sized for them below one row an expert) for the down kernel
 * to finish. Off unless asked for: on the H100 (12-06, bench:moe at V2-Lite, mma16n64) every split count was
 * slower at batches 1 and 4 (batch 1: 0.106 ms a layer unsplit, 0.120 / 0.138 / 0.179 at 2 / 4 / 8 splits: the
 * down kernel's summing of the splits cost more than gate/up gained), and bench:moe-residency found ~1.8 gate/up
 * workgroups resident a slot, so more of them only queue.
 */
export const MOE_GATE_UP_SPLITS_MAX = 8;

/** The smallest TM of any variant sizes the tile list, so one scratch serves every form. */
const MIN_TM = Math.min(GEMV.TM, GEMV1.TM, TILED.TM);
const GROUP_WG = 256;
const COMBINE_WG = 256;

/**
 * gemv while experts average fewer than 24 rows, tiled beyond. Measured on the H100: V2-Lite T = 64 (6 rows)
 * gemv 1.3 ms vs tiled 2.6; T = 256 (24 rows) tiled 2.7 vs gemv 4.2; V3 T = 512 (16 rows) gemv 48 vs tiled 81;
 * T = 2048 (64 rows) tiled 128 vs gemv 213. Where the device has subgroup matrices: the GEMV below mmaMinRows
 * (MOE_MMA_MIN_ROWS; by default 1: DEFAULT_MOE_MMA_MIN_ROWS), the 16-row tiles below 32 rows (two gate/up slabs
 * in flight: see MMA16N64), the 64-row ones beyond, and from MMA128_MIN_ROWS the 128-row ones where the device's
 * limits (maxComputeWorkgroupStorageSize, maxComputeInvocationsPerWorkgroup; WebGPU's defaults when not given)
 * hold their workgroups. Below one row an expert the GEMV is the one-row-tile form.
 */
export function moeGemmVariant(
  dims: MoeDims, tokens: number, subgroupMatrix = false, mmaMinRows = DEFAULT_MOE_MMA_MIN_ROWS,
  limits: { readonly maxComputeWorkgroupStorageSize?: number; readonly maxComputeInvocationsPerWorkgroup?: number } = {},
): MoeGemmVariant {
  const rows = (tokens * dims.topK) / dims.nExperts;
  const gemv = rows < 1 ? 'gemv1' : 'gemv';
  if (subgroupMatrix) {
    if (rows < mmaMinRows) return gemv;
    if (rows < MMA16_MAX_ROWS) return 'mma16n64x2';
    // (mma128d256's workgroup is gate/up's, as mma128's: where one fits, so does the other)
    const fits128 = mmaWorkgroupBytes(MMA128D256) <= (limits.maxComputeWorkgroupStorageSize ?? 16384)
      && 32 * subgroupsOf(MMA128D256) <= (limits.maxComputeInvocationsPerWorkgroup ?? 256);
    return rows >= MMA128_MIN_ROWS && fits128 ? 'mma128d256' : 'mma';
  }
  return rows < 24 ? gemv : 'tiled';
}

/** Workgroup memory of an mma shape's larger half: f16 slabs (x, and gate and up or down), the result scratch, the tile word. */
function mmaWorkgroupBytes(s: MmaShape): number {
  const gateUp = 2 * (s.TM + 2 * s.BN) * (s.BK + 8) + 2 * 1024 * subgroupsOf(s);
  const down = 2 * (s.TM + s.BN_DOWN) * (s.BK_DOWN + 8) + 1024 * subgroupsOf(s);
  return Math.max(gateUp, down) + 16;
}

/** The portable forms fit WebGPU's guaranteed 16 KiB of workgroup memory (tiled gate/up: 12 KiB); the mma ones take up to 29 KiB (16 × 64 gate/up). */
const SHAPES: Record<MoeGemmVariant, GemmShape> = {
  gemv: GEMV, gemv1: GEMV1, tiled: TILED, mma: MMA, mma16n64: MMA16N64, mma16n64x2: MMA16N64X2,
  mma128: MMA128, mma128cf: MMA128CF, mma128d256: MMA128D256,
};
function shapeOf(v: MoeGemmVariant): GemmShape {
  return SHAPES[v];
}

/** Upper bound on the row tiles of `count` experts for T tokens with tile height TM. */
function maxTiles(tokens: number, topK: number, count: number, TM: number): number {
  const rows = Math.min(tokens * topK, tokens * count);
  return Math.ceil(rows / TM) + Math.min(count, tokens * topK);
}

/** Element offsets inside the `groups` scratch (see group.wgsl). */
export function groupsLayout(dims: MoeDims, tokens: number): { tileBase: number; sortedBase: number; words: number } {
  const E = groupedExperts(dims), slots = tokenSlots(dims);
  const tileBase = 2 * E + 2;
  const sortedBase = tileBase + 2 * maxTiles(tokens, slots, E, MIN_TM);
  return { tileBase, sortedBase, words: sortedBase + tokens * slots };
}

/** Byte sizes of the scratch buffers for up to `tokens` tokens (sizes only grow with T: allocate for the max). */
export interface MoeScratchBytes {
  /** Router logits [T, E] f32 (only when moeExperts routes). */
  readonly logits: number;
  /** [T, k] u32 and [T, k] f32 (k: tokenSlots). */
  readonly topkIds: number;
  readonly topkWeights: number;
  /** Grouping metadata (u32). */
  readonly groups: number;
  /**
   * Gate/up activations [T·k, I] f32, and room for a split gate/up's [MOE_GATE_UP_SPLITS_MAX, T·k, 2I] below one
   * row an expert (T·k < E), so at least that of E - 1 assignments: the size never shrinks as T grows.
   */
  readonly act: number;
  /** Per-(token, slot) expert outputs [T·k, hidden] f32. */
  readonly slotOut: number;
}

export function moeScratchBytes(dims: MoeDims, tokens: number): MoeScratchBytes {
  const tk = tokens * tokenSlots(dims);
  return {
    logits: tokens * dims.nExperts * 4,
    topkIds: tk * 4,
    topkWeights: tk * 4,
    groups: groupsLayout(dims, tokens).words * 4,
    act: Math.max(tk, 2 * MOE_GATE_UP_SPLITS_MAX * Math.min(tk, groupedExperts(dims) - 1)) * dims.intermediate * 4,
    slotOut: tk * dims.hidden * 4,
  };
}

export interface MoeScratch {
  /** Needed only when moeExperts runs the router (args.route). */
  readonly logits?: GPUBuffer;
  readonly topkIds: GPUBuffer;
  readonly topkWeights: GPUBuffer;
  readonly groups: GPUBuffer;
  readonly act: GPUBuffer;
  readonly slotOut: GPUBuffer;
}

// ---------------------------------------------------------------- shaders

const GROUP_UNIFORMS = { assignments: 'u32', tile_base: 'u32', sorted_base: 'u32' } as const;
const GATE_UP_UNIFORMS = {
  K: 'u32', N: 'u32', topk: 'u32', x_stride: 'u32', x_offset: 'u32', first_expert: 'u32', expert_count: 'u32',
  g_stride: 'u32', g_offset: 'u32', u_stride: 'u32', u_offset: 'u32', tile_base: 'u32', sorted_base: 'u32',
  k_split: 'u32', part_stride: 'u32',
} as const;
// k_split: K per workgroup z of the mma forms (K: unsplit); act_splits, part_stride: the split gate/up's partials
const DOWN_UNIFORMS = {
  K: 'u32', N: 'u32', first_expert: 'u32', expert_count: 'u32', w_stride: 'u32', w_offset: 'u32', tile_base: 'u32', sorted_base: 'u32',
  k_split: 'u32', act_splits: 'u32', part_stride: 'u32',
} as const;
const COMBINE_UNIFORMS = { tokens: 'u32', hidden: 'u32', out_stride: 'u32', out_offset: 'u32', accumulate: 'u32' } as const;

const GROUP_BINDINGS = bindings([['ids', 'array<u32>'], ['groups', 'array<u32>', 'read_write']], GROUP_UNIFORMS);
/** Expert weights load as 16-byte words, or as single words in the subgroup-matrix forms ([gemv/tiled, mma]). */
const WEIGHT_ARRAYS = ['array<vec4<u32>>', 'array<u32>'] as const;
const gateUpBindings = (w: string, act = 'f32') => bindings(
  [['x', 'array<vec4<f32>>'], ['groups', 'array<u32>'], ['wgate', w], ['wup', w], ['act', `array<${act}>`, 'read_write']],
  GATE_UP_UNIFORMS,
);
const downBindings = (w: string, act = 'f32') => bindings(
  [['act', `array<vec4<${act}>>`], ['groups', 'array<u32>'], ['wdown', w], ['slot_out', 'array<f32>', 'read_write']],
  DOWN_UNIFORMS,
);
const GATE_UP_BINDINGS = WEIGHT_ARRAYS.map((w) => gateUpBindings(w));
const DOWN_BINDINGS = WEIGHT_ARRAYS.map((w) => downBindings(w));
/** The mma forms with f16 act (MmaShape.ACT_F16): same names and order. */
const GATE_UP_ACT16_BINDINGS = gateUpBindings(WEIGHT_ARRAYS[1], 'f16');
const DOWN_ACT16_BINDINGS = downBindings(WEIGHT_ARRAYS[1], 'f16');
const COMBINE_BINDINGS = bindings([['slot_out', 'array<f32>'], ['weights', 'array<f32>'], ['dst', 'array<f32>', 'read_write']], COMBINE_UNIFORMS);
const DOWN_COMBINE_UNIFORMS = { K: 'u32', N: 'u32', w_stride: 'u32', out_stride: 'u32', out_offset: 'u32', accumulate: 'u32' } as const;
const DOWN_COMBINE_BINDINGS = bindings(
  [['act', 'array<vec4<f32>>'], ['ids', 'array<u32>'], ['weights', 'array<f32>'], ['wdown', WEIGHT_ARRAYS[0]], ['out', 'array<f32>', 'read_write']],
  DOWN_COMBINE_UNIFORMS,
);

const HILLIS_STEELE_SCAN = `var c = 0u;
    if (lid < EG) { c = atomicLoad(&cnt[lid]); }
    var incl = c;
    var tincl = (c + TM - 1u) / TM;
    for (var s = 1u; s < EG; s <<= 1u) {
      if (lid < EG) { start[lid] = incl; tstart[lid] = tincl; }
      workgroupBarrier();
      if (lid < EG && lid >= s) { incl += start[lid - s]; tincl += tstart[lid - s]; }
      workgroupBarrier();
    }`;
// start / tstart hold the subgroups' totals first (ceil(EG / GROUP_SG) ≤ EG of them)
const SUBGROUP_SCAN = `var c = 0u;
    if (lid < EG) { c = atomicLoad(&cnt[lid]); }
    var incl = subgroupInclusiveAdd(c);
    var tincl = subgroupInclusiveAdd((c + TM - 1u) / TM);
    let sgi = lid / GROUP_SG;
    if (lid % GROUP_SG == GROUP_SG - 1u && sgi < (EG + GROUP_SG - 1u) / GROUP_SG) { start[sgi] = incl; tstart[sgi] = tincl; }
    workgroupBarrier();
    if (lid < EG) {
      for (var s = 0u; s < sgi; s++) { incl += start[s]; tincl += tstart[s]; }
    }
    workgroupBarrier();`;

/**
 * group.wgsl with its scan: by subgroups where the device runs every workgroup at one subgroup size (`subgroupSize`,
 * which the shader must `enable subgroups` for: groupEnable), else Hillis-Steele.
 */
function groupWgsl(subgroupSize: number | undefined): string {
  return fillWgsl(wgsl('group.wgsl'), { SCAN: subgroupSize ? SUBGROUP_SCAN : HILLIS_STEELE_SCAN }, 'group.wgsl');
}
/** The shader's first lines for groupWgsl(subgroupSize), and its constant. */
function groupEnable(subgroupSize: number | undefined): { enable: string; consts: string; label: string } {
  return subgroupSize
    ? { enable: 'enable subgroups;\n', consts: `const GROUP_SG = ${subgroupSize}u;\n`, label: `_sg${subgroupSize}` }
    : { enable: '', consts: '', label: '' };
}

interface GroupVariant {
  readonly nExperts: number;
  readonly TM: number;
  /** The device's one subgroup size: the scan by subgroups (MatmulLimits.subgroupSize). */
  readonly subgroupSize?: number;
}

function build_moeGroupShader({ nExperts, TM, subgroupSize }: GroupVariant): KernelShader {
  const g = groupEnable(subgroupSize);
  return GROUP_BINDINGS.shader(`moe_group_e${nExperts}_tm${TM}${g.label}`, `${g.enable}const EG = ${nExperts}u;
const TM = ${TM}u;
const WG = ${GROUP_WG}u;
${g.consts}${GROUP_BINDINGS.wgsl}${groupWgsl(subgroupSize)}
@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  group_assignments(lid);
}`);
}

/**
 * Tokens from which the router logits are a GEMM's (with matmulLimits): route-logits.wgsl re-reads and re-norms
 * every token's row for each 4 experts, 0.35 ms a V2-Lite layer at 4096 tokens on the H200 (9 of a prefill's
 * 254 ms, bench/results/prefill-profile.h200.txt), about proportional to the tokens. The f32 GEMM's 32 × 64
 * tiles over K = 2048 took 0.079 ms in one wave (64 × 2048 × 2048, bench/results/matmul-mma.h200.txt), and 4096
 * tokens of 64 experts make 128 such workgroups, within the card's 132 slots: from 2048 tokens that is half the
 * kernel's time or less (an estimate from those two measurements; the GEMM at these shapes is not timed yet).
 * Decode batches stay on the kernel; MOE_ROUTER_GEMM_MIN_TOKENS moves the threshold (at decode sizes the GEMM's
 * few tiles want MATMUL_SPLIT_K_MAX's splits).
 */
export const ROUTER_GEMM_MIN_TOKENS = DEFAULT_ROUTER_GEMM_MIN_TOKENS;

/**
 * Most tokens the one-workgroup kernels that select tokens one after the other take (route-fused.wgsl, and
 * select-group.wgsl's selection + grouping); more go through the separate dispatches.
 */
export const MOE_ROUTE_FUSED_MAX_TOKENS = 8;
const ROUTE_FUSED_WG = 256;
const ROUTE_FUSED_UNIFORMS = {
  tokens: 'u32', hidden: 'u32', x_stride: 'u32', x_offset: 'u32', eps: 'f32', scale: 'f32',
  assignments: 'u32', tile_base: 'u32', sorted_base: 'u32',
} as const;

interface RouteFusedVariant {
  readonly routing: MoeRouting;
  readonly sharedExperts: number;
  readonly subgroupSize?: number;
  readonly gateDtype: WeightDtype;
  readonly normDtype: WeightDtype;
  readonly biasDtype: WeightDtype | null;
  readonly TM: number;
}

function build_moeRouteFusedShader({ routing: r, sharedExperts, subgroupSize, gateDtype, normDtype, biasDtype, TM }: RouteFusedVariant): KernelShader {
  const { prelude, label, biasStorage } = routeSelectPrelude(r, biasDtype, ROUTE_FUSED_WG, sharedExperts);
  const g = groupEnable(subgroupSize);
  const B = bindings([
    ['x', 'array<f32>'], ['w', 'array<u32>'], ['norm_w', 'array<u32>'], ['xn', 'array<f32>', 'read_write'], ['logits', 'array<f32>', 'read_write'],
    ['ids', 'array<u32>', 'read_write'], ['weights', 'array<f32>', 'read_write'], ['groups', 'array<u32>', 'read_write'], ...biasStorage,
  ], ROUTE_FUSED_UNIFORMS);
  return B.shader(`moe_route_fused_${label}_tm${TM}_${gateDtype}_${normDtype}${g.label}`, `${g.enable}${prelude}
const TM = ${TM}u;
const MAX_T = ${MOE_ROUTE_FUSED_MAX_TOKENS}u;
const LANES = ${ROUTE_LOGITS_LANES}u;
const PPT = 4u;
${g.consts}${B.wgsl}${weightLoadWgsl(gateDtype, 'w')}
${weightLoadWgsl(normDtype, 'norm_w', 'norm_at')}
${wgsl('route-fused.wgsl')}
${routeSelectWgsl()}
${groupWgsl(subgroupSize)}
${wgsl('select-group.wgsl')}`);
}

const SELECT_GROUP_UNIFORMS = { tokens: 'u32', scale: 'f32', assignments: 'u32', tile_base: 'u32', sorted_base: 'u32' } as const;

interface SelectGroupVariant {
  readonly routing: MoeRouting;
  readonly sharedExperts: number;
  readonly subgroupSize?: number;
  readonly biasDtype: WeightDtype | null;
  readonly TM: number;
}

/**
 * Threads of the select-and-group kernel: the smallest power of two from 128 with one grouped expert a thread (the
 * grouping's one-pass scan), at most GROUP_WG. Every thread walks the E logits in workgroup memory for the softmax
 * sums, so fewer threads are fewer of those reads: V2-Lite at batch 1 (66 grouped experts) on 128 threads against
 * 256 made the H100's decode step 3.774 / 3.781 -> 3.752 / 3.753 ms (two rounds, same call).
 */
function selectGroupWorkgroup(groupedExperts: number): number {
  return Math.min(GROUP_WG, Math.max(128, 2 ** Math.ceil(Math.log2(groupedExperts))));
}

function build_moeSelectGroupShader({ routing: r, sharedExperts, subgroupSize, biasDtype, TM }: SelectGroupVariant): KernelShader {
  const { prelude, label, biasStorage } = routeSelectPrelude(r, biasDtype, selectGroupWorkgroup(r.nExperts + sharedExperts), sharedExperts);
  const g = groupEnable(subgroupSize);
  const B = bindings([
    ['logits', 'array<f32>'], ['ids', 'array<u32>', 'read_write'], ['weights', 'array<f32>', 'read_write'], ['groups', 'array<u32>', 'read_write'], ...biasStorage,
  ], SELECT_GROUP_UNIFORMS);
  return B.shader(`moe_select_group_${label}_tm${TM}${g.label}`, `${g.enable}${prelude}
const TM = ${TM}u;
${g.consts}${B.wgsl}${routeSelectWgsl()}
${groupWgsl(subgroupSize)}
${wgsl('select-group.wgsl')}

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_index) lid: u32) {
  select_and_group(lid);
}`);
}

/** `fn name(i) -> F8`: weights i..i+7 (i a multiple of 8) of the vec4<u32> array `arr`, unpacked to f32. */
function load8Wgsl(dtype: WeightDtype, name: string, arr: string): string {
  switch (dtype) {
    case 'bf16':
      return `
//!include bf16-unpack
fn ${name}(i: u32) -> F8 {
  let v = ${arr}[i >> 3u];
  return F8(bf16_lo4(v), bf16_hi4(v));
}\n`;
    case 'f16':
      return `
//!include f16-unpack
fn ${name}(i: u32) -> F8 {
  let v = ${arr}[i >> 3u];
  return F8(f16_lo4(v), f16_hi4(v));
}\n`;
    case 'f32':
      return `fn ${name}(i: u32) -> F8 {
  let j = i >> 2u;
  return F8(bitcast<vec4<f32>>(${arr}[j]), bitcast<vec4<f32>>(${arr}[j + 1u]));
}\n`;
  }
}

/**
 * The prefetching (mma) forms keep a slab's weights as loaded until they are stored, a pair a lane: `alias <Alias>`
 * for 2 raw weights, `fn name_raw(i) -> <Alias>` (i even; `arr` bound as array<u32>) and `fn name_pair16(r) ->
 * vec2<f16>`, the pair as the matrices' f16: f16 weights as they are (a bitcast), bf16 and f32 through two
 * f32 → f16 conversions. The conversions are not what bounds these kernels: f16 experts ran within 2% of bf16
 * on the H100 (bench/results/moe-dtype.h100.*).
 */
function rawLoad2Wgsl(dtype: WeightDtype, name: string, arr: string, alias: string): string {
  switch (dtype) {
    case 'bf16':
    case 'f16':
      return `alias ${alias} = u32;
fn ${name}_raw(i: u32) -> ${alias} { return ${arr}[i >> 1u]; }
${pair16Wgsl(dtype, `${name}_pair16`, alias)}\n`;
    case 'f32':
      return `alias ${alias} = vec2<u32>;
fn ${name}_raw(i: u32) -> ${alias} { return vec2<u32>(${arr}[i], ${arr}[i + 1u]); }
${pair16Wgsl(dtype, `${name}_pair16`, alias)}\n`;
  }
}

/**
 * The down kernels' x4 over a split gate/up's output: act holds act_splits blocks [rows, 2K] at part_stride, each a
 * K range's gate ‖ up sums; activation element i = row·K + k is silu(Σ gate)·Σ up over the blocks, in block order.
 */
const ACT_SPLIT_X4 = `fn x4(i: u32) -> vec4<f32> {
  let j = (i / u.K) * 2u * u.K + i % u.K;
  var g = vec4<f32>(0.0);
  var v = vec4<f32>(0.0);
  for (var s = 0u; s < u.act_splits; s++) {
    g += act[(s * u.part_stride + j) >> 2u];
    v += act[(s * u.part_stride + j + u.K) >> 2u];
  }
  return silu_mul4(g, v);
}`;

/** Whether this half of a form moves act as f16: the mma forms with ACT_F16, unsplit. */
function actF16(s: GemmShape, split: boolean): boolean {
  return s.kind === 'mma' && s.ACT_F16 === true && !split;
}

function gemmPrelude(nExperts: number, s: GemmShape, xArr: string, down: boolean, actSplit = false): string {
  // down's x is act: f16 values widened where the form moves act as f16
  const xv = (j: string) => (down && actF16(s, actSplit) ? `vec4<f32>(${xArr}[${j}])` : `${xArr}[${j}]`);
  const consts = s.kind === 'gemv'
    ? `const TM = ${s.TM}u;\nconst COLS = ${s.COLS}u;\nconst LANES = ${s.LANES}u;\nconst U = ${down ? s.U_DOWN : s.U_GATE_UP}u;`
    : s.kind === 'mma'
      ? `const TM = ${s.TM}u;\nconst BN = ${down ? s.BN_DOWN : s.BN}u;\nconst BK = ${down ? s.BK_DOWN : s.BK}u;\nconst STR = ${(down ? s.BK_DOWN : s.BK) + 8}u;\nconst SGM = ${sgmOf(s, down)}u;\nconst SGN = ${subgroupsOf(s) / sgmOf(s, down)}u;\nconst WG = ${32 * subgroupsOf(s)}u;\nconst COLUMNS_FIRST = ${down && s.DOWN_COLUMNS_FIRST === true};`
      : `const TM = ${s.TM}u;\nconst BN = ${s.BN}u;\nconst BK = ${s.BK}u;\nconst RM = ${s.RM}u;\nconst RN = ${s.RN}u;`;
  return `${s.kind === 'mma' ? `${SUBGROUP_MATRIX_WGSL}\n` : ''}const E = ${nExperts}u;
${consts}
struct F8 { lo: vec4<f32>, hi: vec4<f32> }
${actSplit ? ACT_SPLIT_X4 : `fn x4(i: u32) -> vec4<f32> { return ${xv('i >> 2u')}; }`}
fn x8(i: u32) -> F8 { let j = i >> 2u; return F8(${xv('j')}, ${xv('j + 1u')}); }
//!include silu
// The row tile this workgroup serves within its chunk's experts (group.wgsl's tile list):
// (1, expert, first sorted row, rows), or x = 0 when the chunk has fewer tiles
fn expert_tile(tile_in_chunk: u32) -> vec4<u32> {
  let tile = groups[E + 1u + u.first_expert] + tile_in_chunk;
  if (tile >= groups[E + 1u + u.first_expert + u.expert_count]) { return vec4<u32>(0u); }
  let e = groups[u.tile_base + 2u * tile];
  let r0 = groups[u.tile_base + 2u * tile + 1u];
  return vec4<u32>(1u, e, r0, min(TM, groups[e + 1u] - r0));
}
`;
}

function shapeLabel(s: GemmShape): string {
  if (s.kind === 'gemv') return `gemv_tm${s.TM}_c${s.COLS}_l${s.LANES}_u${s.U_GATE_UP}${s.U_DOWN}`;
  return s.kind === 'mma' ? `mma_tm${s.TM}_n${s.BN}_d${s.BN_DOWN}_k${s.BK}x${s.BK_DOWN}_pf${s.STAGES}x${s.STAGES_DOWN}_w2${subgroupsOf(s) === 4 ? '' : `_sg${subgroupsOf(s)}m${s.SGM}x${sgmOf(s, true)}`}${s.DOWN_COLUMNS_FIRST ? '_cf' : ''}` : `tiled_tm${s.TM}_n${s.BN}_k${s.BK}_r${s.RM}x${s.RN}`;
}


const range = (n: number) => [...Array(n).keys()];

/**
 * The x (gate/up: gathered rows of x; down: contiguous act rows) slabs of the mma forms, staged
 * through workgroup memory as f16: a thread's XL loads of 4 values a slab into named registers (stage t's copy
 * by `reg`), the fetch of slab k into them and their stores into `xs`.
 */
function xStaging(TM: number, BK: number, WG: number, down: boolean, reg: (name: string, t: number) => string, stages: readonly number[], d = 1) {
  const XL = (TM * BK) / 4 / WG;
  if (!Number.isInteger(XL)) throw new RangeError(`moe: a ${TM} × ${BK} x slab does not split evenly over ${WG} threads`);
  // slot i's row of the tile: spread d apart so that each store's phases fill the banks (staging-rows.ts)
  const xRow = (i: number) => (d === 1 ? `(lid + ${i * WG}u) / ${BK / 4}u` : `xm_${i}`);
  const declare = range(XL).flatMap((i) => [
    ...stages.map((t) => `var ${reg(`rx_${i}`, t)} = vec4<f32>(0.0);`),
    `let xk_${i} = ((lid + ${i * WG}u) % ${BK / 4}u) * 4u;`,
    ...(d === 1 ? [] : [`let xm_${i} = ${stagingRowWgsl(`(lid + ${i * WG}u) / ${BK / 4}u`, BK, 4, d)};`]),
    // the element where x slot i's row starts (NONE past the tile's rows)
    down
      ? `let xr_${i} = select(NONE, (r0 + ${xRow(i)}) * u.K, ${xRow(i)} < rows);`
      : `var xr_${i} = NONE;
  if (${xRow(i)} < rows) { xr_${i} = (groups[u.sorted_base + r0 + ${xRow(i)}] / u.topk) * u.x_stride + u.x_offset; }`,
  ]);
  const fetch = (k: string, t: number) => range(XL).map((i) => `${reg(`rx_${i}`, t)} = vec4<f32>(0.0);
    if (xr_${i} != NONE && ${k} + xk_${i} < ke) { ${reg(`rx_${i}`, t)} = x4(xr_${i} + ${k} + xk_${i}); }`);
  const store = (t: number) => range(XL).map((i) => `{
      let v = lid + ${i * WG}u;
      let o = ${d === 1 ? `(v / ${BK / 4}u)` : `xm_${i}`} * STR + (v % ${BK / 4}u) * 4u;
      xs[o] = f16(${reg(`rx_${i}`, t)}.x); xs[o + 1u] = f16(${reg(`rx_${i}`, t)}.y); xs[o + 2u] = f16(${reg(`rx_${i}`, t)}.z); xs[o + 3u] = f16(${reg(`rx_${i}`, t)}.w);
    }`);
  return { declare, fetch, store };
}

/**
 * The epilogue of the mma forms: each result tile (i, j) (accumulators g/u or c `${i}_${j}`) goes
 * through the subgroup's 16 × 16 scratch tile, where every lane finishes 8 values (silu·mul for gate/up; the
 * scatter to the assignment's row for down).
 */
function tileWrites(tiles: readonly (readonly [number, number])[], down: boolean, split = false, act16 = false): string {
  // a split gate/up leaves its K range's gate and up sums side by side, [rows, 2N] at z·part_stride, for the
  // down kernel to add up and gate (ACT_SPLIT_X4)
  const gateUpWrite = split
    ? `let o = wg.z * u.part_stride + (r0 + m) * 2u * u.N + n;
      act[o] = out_g[sg * 256u + idx];
      act[o + u.N] = out_u[sg * 256u + idx];`
    : `act[(r0 + m) * u.N + n] = ${act16 ? 'f16(' : ''}silu(out_g[sg * 256u + idx]) * out_u[sg * 256u + idx]${act16 ? ')' : ''};`;
  return tiles.map(([i, j]) => `${down
    ? `subgroupMatrixStore<row_major>(&out_tile, sg * 256u, c${i}_${j}, 16u);`
    : `subgroupMatrixStore<row_major>(&out_g, sg * 256u, g${i}_${j}, 16u);\n  subgroupMatrixStore<row_major>(&out_u, sg * 256u, u${i}_${j}, 16u);`}
  workgroupBarrier();
  for (var q = 0u; q < 8u; q++) {
    let idx = lane + 32u * q;
    let m = sm + ${16 * i}u + idx / 16u;
    let n = n0 + sn + ${16 * j}u + idx % 16u;
    if (m < rows && n < u.N) {
      ${down
        ? 'slot_out[groups[u.sorted_base + r0 + m] * u.N + n] = out_tile[sg * 256u + idx];'
        : gateUpWrite}
    }
  }
  workgroupBarrier();`).join('\n  ');
}

/**
 * The mma forms' generated parts: named accumulators and prefetch registers (a thread's XL x loads of 4 values
 * and WL weight pairs of each matrix per slab), the fetch of a slab into them, their f16 stores, the products
 * of one 16-deep k-step, and the epilogue.
 */
function mmaParts(s: MmaShape, down: boolean, split = false, groupTiles = 0, linearRows = false): Record<string, string> {
  const BN = down ? s.BN_DOWN : s.BN;
  const BK = down ? s.BK_DOWN : s.BK;
  const SG = subgroupsOf(s);
  const SGM = sgmOf(s, down);
  const TMT = s.TM / SGM / 16, TNT = (BN * SGM) / SG / 16;
  const WG = 32 * SG;
  if (!Number.isInteger(TMT) || !Number.isInteger(TNT) || TMT < 1 || TNT < 1) throw new RangeError(`moe mma shape ${JSON.stringify(s)}: blocks must split into 16 × 16 tiles a subgroup`);
  const WL = (BN * BK) / 2 / WG;
  if (!Number.isInteger(WL)) throw new RangeError(`moe mma shape ${JSON.stringify(s)}: slabs must split evenly over ${WG} threads`);
  const STAGES = down ? s.STAGES_DOWN : s.STAGES;
  const stages = range(STAGES);
  // stage t's copy of a prefetch register (one stage: the plain name)
  const reg = (name: string, t: number) => (STAGES === 1 ? name : `${name}_${t}`);
  // the slab rows a lane stages: spread so that each store's phases fill the banks (staging-rows.ts)
  const dx = linearRows ? 1 : stagingRowSpread(BK, BK + 8, 4, s.TM), dw = linearRows ? 1 : stagingRowSpread(BK, BK + 8, 2, BN);
  const x = xStaging(s.TM, BK, WG, down, reg, stages, dx);
  const tiles = range(TMT).flatMap((i) => range(TNT).map((j) => [i, j] as const));
  const mats = down ? [['c', 'ws']] : [['g', 'gs'], ['u', 'us']];
  // weight matrices: [register prefix, raw alias, load fn, f16 pair fn, base, workgroup array]
  const wmats = down
    ? [['rw', 'DownRaw', 'down_raw', 'down_pair16', 'wbase', 'ws']]
    : [['rg', 'GateRaw', 'gate_raw', 'gate_pair16', 'gbase', 'gs'], ['ru', 'UpRaw', 'up_raw', 'up_pair16', 'ubase', 'us']];
  const declare = [
    ...mats.flatMap(([c]) => tiles.map(([i, j]) => `var ${c}${i}_${j} = ResT();`)),
    ...x.declare,
    ...range(WL).flatMap((j) => [
      ...stages.flatMap((t) => wmats.map(([r, alias]) => `var ${reg(`${r}_${j}`, t)} = ${alias}();`)),
      `let wn_${j} = ${stagingRowWgsl(`(lid + ${j * WG}u) / ${BK / 2}u`, BK, 2, dw)};`,
      `let wk_${j} = ((lid + ${j * WG}u) % ${BK / 2}u) * 2u;`,
    ]),
  ];
  // slab k's loads into stage t's registers
  const fetch = (k: string, t: number) => [
    ...x.fetch(k, t),
    ...range(WL).flatMap((j) => [
      ...wmats.map(([r, alias]) => `${reg(`${r}_${j}`, t)} = ${alias}();`),
      `if (n0 + wn_${j} < u.N && ${k} + wk_${j} < ke) {`,
      ...wmats.map(([r, , load, , base]) => `  ${reg(`${r}_${j}`, t)} = ${load}(${base} + (n0 + wn_${j}) * u.K + ${k} + wk_${j});`),
      `}`,
    ]),
  ];
  const store = (t: number) => [
    ...x.store(t),
    ...range(WL).map((j) => `{
      let o = wn_${j} * STR + wk_${j};
      ${wmats.map(([r, , , pair16, , arr]) => `let ${r} = ${pair16}(${reg(`${r}_${j}`, t)});
      ${arr}[o] = ${r}.x; ${arr}[o + 1u] = ${r}.y;`).join('\n      ')}
    }`),
  ];
  const multiply = [
    ...range(TMT).map((i) => `let a${i} = subgroupMatrixLoad<LeftT, row_major>(&xs, (sm + ${16 * i}u) * STR + kk, STR);`),
    ...mats.flatMap(([c, arr]) => range(TNT).map((j) => `let b${c}${j} = subgroupMatrixLoad<RightT, col_major>(&${arr}, (sn + ${16 * j}u) * STR + kk, STR);`)),
    ...mats.flatMap(([c]) => tiles.map(([i, j]) => `${c}${i}_${j} = subgroupMatrixMultiplyAccumulate(a${i}, b${c}${j}, ${c}${i}_${j});`)),
  ];
  // the K loop: a trip a slab (stores it, issues the loads of the slab STAGES trips ahead into the registers it
  // emptied, multiplies); with two stages a round is two trips, the second skipped past K (k0 and K are
  // uniform, so are its barriers)
  const trip = (t: number) => `workgroupBarrier();   // the previous slab's products are done with the workgroup arrays
    ${store(t).join('\n    ')}
    workgroupBarrier();
    let kn = k0 + ${STAGES === 1 ? 'BK' : `${(t + STAGES) * BK}u`};
    ${fetch('kn', t).join('\n    ')}
    for (var kk = 0u; kk < BK; kk += 16u) {
      ${multiply.join('\n      ')}
    }`;
  // over this workgroup's K range [kb, ke) (expert-mma-*.wgsl: all of K unless split)
  const loop = STAGES === 1
    ? `for (var k0 = kb; k0 < ke; k0 += BK) {\n    ${trip(0)}\n  }`
    : `for (var k0 = kb; k0 < ke; k0 += ${STAGES * BK}u) {\n    ${stages.map((t) => (t === 0 ? trip(t) : `if (k0 + ${t * BK}u < ke) {\n    ${trip(t)}\n    }`)).join('\n    ')}\n  }`;
  // the (tile, column block) of this workgroup (expert-mma-*.wgsl)
  const block = down && s.DOWN_COLUMNS_FIRST
    ? 'let tile_id = wg.y;\n  let column_block = wg.x;'
    : groupTiles > 0
      ? `let blk = grouped_block(wg.x + wg.y * nwg.x, nwg.x, nwg.y, ${groupTiles}u);\n  let tile_id = blk.x;\n  let column_block = blk.y;`
      : 'let tile_id = wg.x;\n  let column_block = wg.y;';
  return {
    BLOCK: block, DECLARE: declare.join('\n  '), FETCH_FIRST: stages.flatMap((t) => fetch(`kb + ${t * BK}u`, t)).join('\n  '),
    LOOP: loop, WRITE: tileWrites(tiles, down, split, !down && actF16(s, split)),
  };
}

/**
 * The GEMV forms' lane reduction and stores: partials through workgroup memory and tree_sum_groups, or (subgroup)
 * each column's LANES lanes summed by shuffles in the same order (lanesSumWgsl), its first lane storing.
 */
function gemvReduceParts(down: boolean, subgroup: boolean, actRow = '(r0 + r)'): Record<string, string> {
  if (subgroup) {
    return {
      REDUCE_DECL: lanesSumWgsl('lanes_sum', GEMV.LANES),
      REDUCE: down
        ? `for (var r = 0u; r < TM; r++) {
    let sum = lanes_sum(hsum(acc[r]));
    let col = wg.y * COLS + c;
    if (lane == 0u && col < u.N && r < rows) { slot_out[groups[u.sorted_base + r0 + r] * u.N + col] = sum; }
  }`
        : `for (var r = 0u; r < TM; r++) {
    let gsum = lanes_sum(hsum(ag[r]));
    let usum = lanes_sum(hsum(au[r]));
    let col = wg.y * COLS + c;
    if (lane == 0u && col < u.N && r < rows) { act[${actRow} * u.N + col] = silu(gsum) * usum; }
  }`,
    };
  }
  return {
    REDUCE_DECL: `const TREE_N = OUTS * LANES;
const TREE_WG = WG;
//!include tree-sum-groups
var<workgroup> red: array<f32, TREE_N>;`,
    // partials laid out [output][lane]; gate/up's output o = (c · TM + r) · 2 + (0 gate | 1 up), down's c · TM + r
    REDUCE: down
      ? `for (var r = 0u; r < TM; r++) { red[(c * TM + r) * LANES + lane] = hsum(acc[r]); }
  workgroupBarrier();
  tree_sum_groups(&red, OUTS, LANES, lid);
  for (var o = lid; o < OUTS; o += WG) {
    let col = wg.y * COLS + o / TM;
    let r = o % TM;
    if (col < u.N && r < rows) {
      let a = groups[u.sorted_base + r0 + r];
      slot_out[a * u.N + col] = red[o * LANES];
    }
  }`
      : `for (var r = 0u; r < TM; r++) {
    red[((c * TM + r) * 2u) * LANES + lane] = hsum(ag[r]);
    red[((c * TM + r) * 2u + 1u) * LANES + lane] = hsum(au[r]);
  }
  workgroupBarrier();
  tree_sum_groups(&red, OUTS, LANES, lid);
  for (var o = lid; o < COLS * TM; o += WG) {
    let col = wg.y * COLS + o / TM;
    let r = o % TM;
    if (col < u.N && r < rows) {
      act[${actRow} * u.N + col] = silu(red[(o * 2u) * LANES]) * red[(o * 2u + 1u) * LANES];
    }
  }`,
  };
}

function gemmFile(variant: MoeGemmVariant, half: 'gate-up' | 'down', bindingsWgsl: string, split = false, subgroupReduce = false, actByAssignment = false, groupTiles = 0, linearRows = false): string {
  const s = shapeOf(variant);
  const file = `expert-${s.kind}-${half}.wgsl`;
  const parts = s.kind === 'mma' ? mmaParts(s, half === 'down', split, groupTiles, linearRows)
    : s.kind === 'gemv' ? gemvReduceParts(half === 'down', subgroupReduce, actByAssignment ? 'groups[u.sorted_base + r0 + r]' : undefined) : {};
  return fillWgsl(wgsl(file), { ...parts, BINDINGS: bindingsWgsl }, file);
}

interface GateUpVariant {
  readonly nExperts: number;
  readonly gateDtype: WeightDtype;
  readonly upDtype: WeightDtype;
  readonly variant: MoeGemmVariant;
  /** K split over workgroups (mma forms): gate and up written unfinished, for a down kernel with splitAct. */
  readonly split?: boolean;
  /** The GEMV forms' lanes summed by subgroup shuffles (moeSubgroupReduce). */
  readonly subgroupReduce?: boolean;
  /** GEMV forms: act rows written at their assignment (t·K + j) instead of their sorted row, for the down-combine kernel. */
  readonly actByAssignment?: boolean;
  /** mma forms: (tile, column block) taken in groups of this many row tiles (MoeExpertGemmArgs.groupTiles; 0: tiles first). */
  readonly groupTiles?: number;
  /** mma forms: the lanes stage consecutive slab rows (MatmulLimits.linearStagingRows; default: spread). */
  readonly linearRows?: boolean;
}

/** Whether the form sums its lanes by subgroup shuffles on a device whose one subgroup size is `subgroupSize`. */
function moeSubgroupReduce(variant: MoeGemmVariant, subgroupSize: number | undefined): boolean {
  const s = shapeOf(variant);
  return s.kind === 'gemv' && subgroupSize !== undefined && subgroupSize % s.LANES === 0;
}

function checkSplitForm(s: GemmShape): void {
  if (s.kind !== 'mma') throw new RangeError('moe: only the subgroup-matrix forms split K');
}

function checkGroupTiles(s: GemmShape, groupTiles: number, down = false): void {
  if (!Number.isInteger(groupTiles) || groupTiles < 0) throw new RangeError(`moe: groupTiles ${groupTiles} (a whole number, 0 for none)`);
  if (groupTiles === 0) return;
  if (s.kind !== 'mma') throw new RangeError('moe: only the subgroup-matrix forms take their tiles in grouped order');
  if (down && s.DOWN_COLUMNS_FIRST) throw new RangeError('moe: a columns-first down form has its own order (no groupTiles)');
}

function build_moeGateUpShader({ nExperts, gateDtype, upDtype, variant, split = false, subgroupReduce = false, actByAssignment = false, groupTiles = 0, linearRows = false }: GateUpVariant): KernelShader {
  const s = shapeOf(variant);
  if (split) checkSplitForm(s);
  checkGroupTiles(s, groupTiles);
  if (actByAssignment && s.kind !== 'gemv') throw new RangeError('moe: only the GEMV forms write act by assignment');
  const B = actF16(s, split) ? GATE_UP_ACT16_BINDINGS : GATE_UP_BINDINGS[+(s.kind === 'mma')]!;
  return B.shader(`moe_gate_up_${shapeLabel(s)}_e${nExperts}_${gateDtype}_${upDtype}${split ? '_splitk' : ''}${subgroupReduce ? '_sg' : ''}${actByAssignment ? '_asg' : ''}${groupTiles > 0 ? `_g${groupTiles}` : ''}${linearRows && s.kind === 'mma' ? '_lin' : ''}`, `${subgroupReduce ? SUBGROUPS_ENABLE : ''}${gemmPrelude(nExperts, s, 'x', false)}${groupTiles > 0 ? '//!include grouped-order\n' : ''}${s.kind === 'mma'
      ? `${rawLoad2Wgsl(gateDtype, 'gate', 'wgate', 'GateRaw')}${rawLoad2Wgsl(upDtype, 'up', 'wup', 'UpRaw')}`
      : `${load8Wgsl(gateDtype, 'gate8', 'wgate')}${load8Wgsl(upDtype, 'up8', 'wup')}`}
${gemmFile(variant, 'gate-up', B.wgsl, split, subgroupReduce, actByAssignment, groupTiles, linearRows)}`);
}

interface DownVariant {
  readonly nExperts: number;
  readonly dtype: WeightDtype;
  readonly variant: MoeGemmVariant;
  /** act is a split gate/up's partials (ACT_SPLIT_X4). */
  readonly splitAct?: boolean;
  /** The GEMV forms' lanes summed by subgroup shuffles (moeSubgroupReduce). */
  readonly subgroupReduce?: boolean;
  /** As GateUpVariant's. */
  readonly groupTiles?: number;
  readonly linearRows?: boolean;
}

function build_moeDownShader({ nExperts, dtype, variant, splitAct = false, subgroupReduce = false, groupTiles = 0, linearRows = false }: DownVariant): KernelShader {
  const s = shapeOf(variant);
  if (splitAct) checkSplitForm(s);
  checkGroupTiles(s, groupTiles, true);
  const B = actF16(s, splitAct) ? DOWN_ACT16_BINDINGS : DOWN_BINDINGS[+(s.kind === 'mma')]!;
  return B.shader(`moe_down_${shapeLabel(s)}_e${nExperts}_${dtype}${splitAct ? '_splitact' : ''}${subgroupReduce ? '_sg' : ''}${groupTiles > 0 ? `_g${groupTiles}` : ''}${linearRows && s.kind === 'mma' ? '_lin' : ''}`, `${subgroupReduce ? SUBGROUPS_ENABLE : ''}${gemmPrelude(nExperts, s, 'act', true, splitAct)}${groupTiles > 0 ? '//!include grouped-order\n' : ''}${s.kind === 'mma' ? rawLoad2Wgsl(dtype, 'down', 'wdown', 'DownRaw') : load8Wgsl(dtype, 'down8', 'wdown')}
${gemmFile(variant, 'down', B.wgsl, false, subgroupReduce, false, groupTiles, linearRows)}`);
}

const SUBGROUPS_ENABLE = 'enable subgroups;\n';

function build_moeCombineShader({ topK }: { readonly topK: number }): KernelShader {
  return COMBINE_BINDINGS.shader(
    `moe_combine_k${topK}`,
    `const K = ${topK}u;\nconst WG = ${COMBINE_WG}u;\n${fillWgsl(wgsl('combine.wgsl'), { BINDINGS: COMBINE_BINDINGS.wgsl }, 'combine.wgsl')}`,
  );
}

interface DownCombineVariant {
  readonly dtype: WeightDtype;
  /** Slots a token (the shared experts' included). */
  readonly topK: number;
  /** Lanes summed by subgroup shuffles (moeSubgroupReduce), else through workgroup memory. */
  readonly subgroupReduce?: boolean;
}

/** The one-token down GEMV with the combine (expert-gemv-down-combine.wgsl), on GEMV1's lanes and K steps. */
function build_moeDownCombineShader({ dtype, topK, subgroupReduce = false }: DownCombineVariant): KernelShader {
  const s = GEMV1;
  const reduce = subgroupReduce
    ? {
      REDUCE_DECL: lanesSumWgsl('lanes_sum', s.LANES),
      REDUCE: `let slot = lanes_sum(hsum(acc));
  if (lane == 0u) { slots[j] = slot; }`,
    }
    : {
      // the down kernel's tree over [slot][lane] (its TM = 1: a group a column there, a slot here)
      REDUCE_DECL: `const TREE_N = WG;
const TREE_WG = WG;
//!include tree-sum-groups
var<workgroup> red: array<f32, TREE_N>;`,
      REDUCE: `red[lid] = hsum(acc);
  workgroupBarrier();
  tree_sum_groups(&red, TOPK, LANES, lid);
  if (lane == 0u) { slots[j] = red[j * LANES]; }`,
    };
  const B = DOWN_COMBINE_BINDINGS;
  return B.shader(`moe_down_combine_${shapeLabel(s)}_k${topK}_${dtype}${subgroupReduce ? '_sg' : ''}`, `${subgroupReduce ? SUBGROUPS_ENABLE : ''}const TOPK = ${topK}u;
const LANES = ${s.LANES}u;
const U = ${s.U_DOWN}u;
struct F8 { lo: vec4<f32>, hi: vec4<f32> }
fn x8(i: u32) -> F8 { let j = i >> 2u; return F8(act[j], act[j + 1u]); }
${load8Wgsl(dtype, 'down8', 'wdown')}
${fillWgsl(wgsl('expert-gemv-down-combine.wgsl'), { ...reduce, BINDINGS: B.wgsl }, 'expert-gemv-down-combine.wgsl')}`);
}

// ---------------------------------------------------------------- launchers

function checkDims(d: MoeDims): void {
  for (const [k, v] of Object.entries(d)) {
    if (!Number.isInteger(v) || v < (k === 'sharedExperts' ? 0 : 1)) throw new RangeError(`moe: ${k} = ${v}`);
  }
  if (d.topK > d.nExperts) throw new RangeError(`moe: topK ${d.topK} > ${d.nExperts} experts`);
  // the GEMMs read 8 weights (one 16-byte word of 16-bit values) at a time along K
  if (d.hidden % 8 !== 0 || d.intermediate % 8 !== 0) {
    throw new RangeError(`moe: hidden (${d.hidden}) and intermediate (${d.intermediate}) must be multiples of 8`);
  }
}

/**
 * Checks that chunks tile [0, E) in order with the expected per-expert shape (experts past E, as the shared ones
 * a call does not route, are left alone).
 */
function checkChunks(what: string, chunks: readonly MoeExpertChunk[], E: number, rows: number, cols: number): void {
  let next = 0;
  for (const c of chunks) {
    if (next >= E) break;
    if (c.firstExpert !== next || c.count < 1) throw new RangeError(`moe ${what}: chunks must cover experts 0..${E - 1} in order (got first ${c.firstExpert}, expected ${next})`);
    const sh = c.tensor.shape;
    const ok = (sh.length === 3 && sh[0] === c.count && sh[1] === rows && sh[2] === cols) || (sh.length === 2 && sh[0] === c.count * rows && sh[1] === cols);
    if (!ok) throw new RangeError(`moe ${what}: chunk at expert ${c.firstExpert} has shape [${sh}], expected [${c.count}, ${rows}, ${cols}]`);
    next += c.count;
  }
  if (next < E) throw new RangeError(`moe ${what}: chunks cover ${next} of ${E} experts`);
}

function chunkAt(chunks: readonly MoeExpertChunk[], e: number): MoeExpertChunk {
  return chunks.find((c) => e >= c.firstExpert && e < c.firstExpert + c.count)!;
}

export interface MoeGroupArgs {
  readonly dims: MoeDims;
  readonly tokens: number;
  readonly topkIds: GPUBuffer;
  readonly groups: GPUBuffer;
  readonly variant: MoeGemmVariant;
  /** The device's one subgroup size (MatmulLimits.subgroupSize): the counts scanned by subgroups. */
  readonly subgroupSize?: number;
}

/** The grouping kernels' scan by subgroups, where a device's one subgroup size is known and divides their workgroups. */
function subgroupArg(size: number | undefined, wg = GROUP_WG): { subgroupSize?: number } {
  return size !== undefined && wg % size === 0 && GROUP_WG % size === 0 && ROUTE_FUSED_WG % size === 0 ? { subgroupSize: size } : {};
}

export function moeGroup(a: MoeGroupArgs): KernelProgram {
  const L = groupsLayout(a.dims, a.tokens);
  return {
    shader: moeGroupShader({ nExperts: groupedExperts(a.dims), TM: shapeOf(a.variant).TM, ...subgroupArg(a.subgroupSize) }),
    buffers: GROUP_BINDINGS.buffers({ ids: a.topkIds, groups: a.groups }),
    uniformValues: { assignments: a.tokens * tokenSlots(a.dims), tile_base: L.tileBase, sorted_base: L.sortedBase },
    workgroups: [1],
  };
}

export interface MoeRouteFusedArgs {
  readonly dims: MoeDims;
  readonly routing: MoeRouting;
  /** At most MOE_ROUTE_FUSED_MAX_TOKENS. */
  readonly tokens: number;
  /** The residual stream [tokens, hidden] (stride / offset optional) and the norm that makes the experts' input. */
  readonly x: GPUBuffer;
  readonly xStride?: number;
  readonly xOffset?: number;
  readonly norm: { readonly weight: GpuTensor; readonly eps: number };
  /** Written: the normed rows [tokens, hidden]. */
  readonly xn: GPUBuffer;
  readonly gateWeight: GpuTensor;
  readonly bias: GpuTensor | null;
  readonly scratch: MoeScratch;
  /** The expert GEMM form that reads the grouping (its tile height). */
  readonly variant: MoeGemmVariant;
  /** The device's one subgroup size (MatmulLimits.subgroupSize): the grouping's scan by subgroups. */
  readonly subgroupSize?: number;
}

/** RMSNorm, router logits, selection and grouping in one dispatch (route-fused.wgsl): for a few tokens. */
export function moeRouteFused(a: MoeRouteFusedArgs): KernelProgram {
  const T = a.tokens, H = a.dims.hidden, r = a.routing;
  if (!Number.isInteger(T) || T < 1 || T > MOE_ROUTE_FUSED_MAX_TOKENS) throw new RangeError(`moeRouteFused: ${T} tokens outside [1, ${MOE_ROUTE_FUSED_MAX_TOKENS}]`);
  if (a.gateWeight.shape[0] !== r.nExperts || a.gateWeight.shape[1] !== H) throw new RangeError(`moeRouteFused: gate weight [${a.gateWeight.shape}] is not [${r.nExperts}, ${H}]`);
  if (a.norm.weight.shape.length !== 1 || a.norm.weight.shape[0] !== H) throw new RangeError(`moeRouteFused: norm weight [${a.norm.weight.shape}] is not [${H}]`);
  if (!a.scratch.logits) throw new RangeError('moeRouteFused: scratch.logits is needed');
  const noaux = r.method === 'noaux_tc';
  const L = groupsLayout(a.dims, T);
  const shader = moeRouteFusedShader({
    routing: r, sharedExperts: a.dims.sharedExperts ?? 0, ...subgroupArg(a.subgroupSize), gateDtype: a.gateWeight.dtype, normDtype: a.norm.weight.dtype, biasDtype: noaux ? (a.bias?.dtype ?? null) : null, TM: shapeOf(a.variant).TM,
  });
  return {
    shader,
    buffers: shaderBuffers(shader, {
      x: a.x, w: a.gateWeight.buffer, norm_w: a.norm.weight.buffer, xn: a.xn, logits: a.scratch.logits, ids: a.scratch.topkIds,
      weights: a.scratch.topkWeights, groups: a.scratch.groups, bias: noaux ? a.bias!.buffer : undefined,
    }),
    uniformValues: {
      tokens: T, hidden: H, x_stride: a.xStride ?? H, x_offset: a.xOffset ?? 0, eps: a.norm.eps, scale: r.routedScalingFactor,
      assignments: T * tokenSlots(a.dims), tile_base: L.tileBase, sorted_base: L.sortedBase,
    },
    workgroups: [1],
  };
}

export interface MoeSelectGroupArgs {
  readonly dims: MoeDims;
  readonly routing: MoeRouting;
  /** At most MOE_ROUTE_FUSED_MAX_TOKENS (the tokens are selected one after the other). */
  readonly tokens: number;
  /** scratch.logits holds the router logits [tokens, E]; topkIds, topkWeights and groups are written. */
  readonly scratch: MoeScratch;
  /** noaux_tc: e_score_correction_bias [E]; null for the V2 methods. */
  readonly bias: GpuTensor | null;
  /** The expert GEMM form that reads the grouping (its tile height). */
  readonly variant: MoeGemmVariant;
  /** The device's one subgroup size (MatmulLimits.subgroupSize): the grouping's scan by subgroups. */
  readonly subgroupSize?: number;
}

/** Selection (moeRouteSelect) then grouping (moeGroup) of a few tokens in one dispatch, bit for bit theirs. */
export function moeSelectGroup(a: MoeSelectGroupArgs): KernelProgram {
  const T = a.tokens, r = a.routing;
  if (!Number.isInteger(T) || T < 1 || T > MOE_ROUTE_FUSED_MAX_TOKENS) throw new RangeError(`moeSelectGroup: ${T} tokens outside [1, ${MOE_ROUTE_FUSED_MAX_TOKENS}]`);
  if (r.nExperts !== a.dims.nExperts || r.topK !== a.dims.topK) throw new RangeError('moeSelectGroup: routing and dims disagree on experts / topK');
  if (a.bias && (a.bias.shape.length !== 1 || a.bias.shape[0] !== r.nExperts)) throw new RangeError(`moeSelectGroup: bias shape [${a.bias.shape}] is not [${r.nExperts}]`);
  if (!a.scratch.logits) throw new RangeError('moeSelectGroup: scratch.logits is needed');
  const noaux = r.method === 'noaux_tc';
  const L = groupsLayout(a.dims, T);
  const shader = moeSelectGroupShader({ routing: r, sharedExperts: a.dims.sharedExperts ?? 0, ...subgroupArg(a.subgroupSize, selectGroupWorkgroup(groupedExperts(a.dims))), biasDtype: noaux ? (a.bias?.dtype ?? null) : null, TM: shapeOf(a.variant).TM });
  return {
    shader,
    buffers: shaderBuffers(shader, {
      logits: a.scratch.logits, ids: a.scratch.topkIds, weights: a.scratch.topkWeights, groups: a.scratch.groups, bias: noaux ? a.bias!.buffer : undefined,
    }),
    uniformValues: { tokens: T, scale: r.routedScalingFactor, assignments: T * tokenSlots(a.dims), tile_base: L.tileBase, sorted_base: L.sortedBase },
    workgroups: [1],
  };
}

export interface MoeExpertGemmArgs {
  readonly dims: MoeDims;
  readonly tokens: number;
  /** Hidden states [T, hidden] f32; stride and offset multiples of 4. */
  readonly x: GPUBuffer;
  readonly xStride?: number;
  readonly xOffset?: number;
  readonly weights: MoeExpertWeights;
  readonly groups: GPUBuffer;
  readonly act: GPUBuffer;
  readonly slotOut: GPUBuffer;
  readonly variant: MoeGemmVariant;
  /** K splits of gate/up (mma forms; default 1): its workgroups' grid z, the down kernel finishing their sums. */
  readonly gateUpSplits?: number;
  /**
   * mma forms: the workgroups take (row tile, column block) in groups of this many tiles, down then across, so
   * those in flight share a few tiles' rows and a few experts' weights in the L2 cache (0: tiles first).
   */
  readonly groupTiles?: { readonly gateUp: number; readonly down: number };
  /** mma forms: the lanes stage consecutive slab rows (MatmulLimits.linearStagingRows; default: spread, staging-rows.ts). */
  readonly linearRows?: boolean;
  /** The device's one subgroup size (MatmulLimits.subgroupSize): the GEMV forms sum their lanes by shuffles. */
  readonly subgroupSize?: number;
  /**
   * The combine done by the down kernel (canCombineInDown): the down GEMV of each token's slots added into `out`
   * (expert-gemv-down-combine.wgsl), instead of the slot outputs in slotOut for moeCombine.
   */
  readonly combine?: {
    readonly topkIds: GPUBuffer; readonly topkWeights: GPUBuffer; readonly out: GPUBuffer; readonly outStride?: number; readonly outOffset?: number;
    readonly accumulate?: boolean; readonly maxInvocations?: number;
  };
}

/**
 * Whether moeExpertGemms can add the combine into the down kernel: one token (each expert's rows read once), the
 * one-row GEMV form, every expert's down rows in one binding, and the token's slots × 32 lanes in one workgroup
 * (maxInvocations: the device's maxComputeInvocationsPerWorkgroup, WebGPU's default 256 unless told).
 */
export function canCombineInDown(tokens: number, variant: MoeGemmVariant, dims: MoeDims, down: readonly MoeExpertChunk[], maxInvocations = 256): boolean {
  const d = down[0];
  return tokens === 1 && variant === 'gemv1' && d !== undefined && d.firstExpert === 0 && d.count >= groupedExperts(dims)
    && tokenSlots(dims) * GEMV1.LANES <= maxInvocations && dims.hidden <= 65535;
}

/** The gate/up dispatches (one per chunk segment) then the down dispatches (one per down chunk), or the down-combine. */
export function moeExpertGemms(a: MoeExpertGemmArgs): KernelProgram[] {
  const { hidden: H, intermediate: I } = a.dims;
  // the shared experts routed with the others are more experts and more slots a token
  const E = groupedExperts(a.dims), topK = tokenSlots(a.dims);
  const T = a.tokens;
  const s = shapeOf(a.variant);
  const L = groupsLayout(a.dims, T);
  const xStride = a.xStride ?? H;
  const xOffset = a.xOffset ?? 0;
  if (xStride % 4 !== 0 || xOffset % 4 !== 0) throw new RangeError(`moe: x stride ${xStride} / offset ${xOffset} must be multiples of 4`);
  const w = a.weights;
  const fused = w.gateUp !== undefined;
  if (fused === (w.gate !== undefined || w.up !== undefined) || (!fused && (w.gate === undefined || w.up === undefined))) {
    throw new RangeError('moe: give either gate and up, or gateUp');
  }
  const gateChunks = fused ? w.gateUp! : w.gate!;
  const upChunks = fused ? w.gateUp! : w.up!;
  if (fused) checkChunks('gateUp', gateChunks, E, 2 * I, H);
  else {
    checkChunks('gate', gateChunks, E, I, H);
    checkChunks('up', upChunks, E, I, H);
  }
  checkChunks('down', w.down, E, H, I);
  const projStride = (fused ? 2 : 1) * I * H;
  // K splits of gate/up: each a K range of whole slabs, none empty
  const wantSplits = a.gateUpSplits ?? 1;
  if (!Number.isInteger(wantSplits) || wantSplits < 1) throw new RangeError(`moe: gateUpSplits ${wantSplits}`);
  if (wantSplits > 1) checkSplitForm(s);
  const BK = s.kind === 'mma' ? s.BK : H;
  const kSplit = Math.ceil(Math.ceil(H / BK) / wantSplits) * BK;
  const splits = Math.ceil(H / kSplit);
  const partStride = T * topK * 2 * I;
  if (splits > 1 && a.act.size < splits * partStride * 4) throw new RangeError(`moe: act scratch too small for ${splits} gate/up splits of ${T} tokens`);

  const gridY = (N: number, down = false) => Math.ceil(N / (s.kind === 'gemv' ? s.COLS : s.kind === 'mma' && down ? s.BN_DOWN : s.BN));
  const gridX = (count: number) => {
    const x = maxTiles(T, topK, count, s.TM);
    if (x > 65535) throw new RangeError(`moe: ${T} tokens need ${x} row tiles, above one dispatch dimension; split the batch`);
    return x;
  };

  const sg = moeSubgroupReduce(a.variant, a.subgroupSize);
  const cb = a.combine;
  if (cb && !canCombineInDown(T, a.variant, a.dims, w.down, cb.maxInvocations)) throw new RangeError(`moe: no down-combine for ${T} tokens on ${a.variant}`);
  const programs: KernelProgram[] = [];
  const bounds = [...new Set([...gateChunks, ...upChunks].map((c) => c.firstExpert))].filter((f) => f < E).sort((p, q) => p - q);
  bounds.push(E);
  for (let i = 0; i + 1 < bounds.length; i++) {
    const first = bounds[i]!;
    const count = bounds[i + 1]! - first;
    const gc = chunkAt(gateChunks, first);
    const uc = chunkAt(upChunks, first);
    programs.push({
      shader: moeGateUpShader({
        nExperts: E, gateDtype: gc.tensor.dtype, upDtype: uc.tensor.dtype, variant: a.variant, split: splits > 1 ? true : undefined,
        ...(sg ? { subgroupReduce: true } : {}), ...(cb ? { actByAssignment: true } : {}), ...(a.groupTiles?.gateUp ? { groupTiles: a.groupTiles.gateUp } : {}),
        ...(a.linearRows ? { linearRows: true } : {}),
      }),
      // every form binds the same names in the same order
      buffers: GATE_UP_BINDINGS[0]!.buffers({ x: a.x, groups: a.groups, wgate: gc.tensor.buffer, wup: uc.tensor.buffer, act: a.act }),
      uniformValues: {
        K: H, N: I, topk: topK, x_stride: xStride, x_offset: xOffset, first_expert: first, expert_count: count,
        g_stride: projStride, g_offset: (first - gc.firstExpert) * projStride,
        u_stride: projStride, u_offset: (first - uc.firstExpert) * projStride + (fused ? I * H : 0),
        tile_base: L.tileBase, sorted_base: L.sortedBase, k_split: kSplit, part_stride: partStride,
      },
      workgroups: [gridX(count), gridY(I), splits],
    });
  }
  if (cb) {
    const d = w.down[0]!;
    programs.push({
      shader: moeDownCombineShader({ dtype: d.tensor.dtype, topK, ...(sg ? { subgroupReduce: true } : {}) }),
      buffers: DOWN_COMBINE_BINDINGS.buffers({ act: a.act, ids: cb.topkIds, weights: cb.topkWeights, wdown: d.tensor.buffer, out: cb.out }),
      uniformValues: { K: I, N: H, w_stride: H * I, out_stride: cb.outStride ?? H, out_offset: cb.outOffset ?? 0, accumulate: cb.accumulate ? 1 : 0 },
      workgroups: [H, T],
    });
    return programs;
  }
  for (const c of w.down) {
    if (c.firstExpert >= E) break;
    const count = Math.min(c.count, E - c.firstExpert);
    programs.push({
      shader: moeDownShader({
        nExperts: E, dtype: c.tensor.dtype, variant: a.variant, splitAct: splits > 1 ? true : undefined, ...(sg ? { subgroupReduce: true } : {}),
        ...(a.groupTiles?.down ? { groupTiles: a.groupTiles.down } : {}), ...(a.linearRows ? { linearRows: true } : {}),
      }),
      buffers: DOWN_BINDINGS[0]!.buffers({ act: a.act, groups: a.groups, wdown: c.tensor.buffer, slot_out: a.slotOut }),
      uniformValues: {
        K: I, N: H, first_expert: c.firstExpert, expert_count: count, w_stride: H * I, w_offset: 0,
        tile_base: L.tileBase, sorted_base: L.sortedBase, k_split: I, act_splits: splits, part_stride: partStride,
      },
      workgroups: s.kind === 'mma' && s.DOWN_COLUMNS_FIRST ? [gridY(H, true), gridX(count)] : [gridX(count), gridY(H, true)],
    });
  }
  return programs;
}

export interface MoeCombineArgs {
  readonly topK: number;
  readonly tokens: number;
  readonly hidden: number;
  readonly slotOut: GPUBuffer;
  readonly topkWeights: GPUBuffer;
  readonly out: GPUBuffer;
  readonly outStride?: number;
  readonly outOffset?: number;
  /** Add to out (residual / shared experts' output) instead of overwriting it. */
  readonly accumulate?: boolean;
}

export function moeCombine(a: MoeCombineArgs): KernelProgram {
  const ty = Math.min(a.tokens, 65535);
  return {
    shader: moeCombineShader({ topK: a.topK }),
    buffers: COMBINE_BINDINGS.buffers({ slot_out: a.slotOut, weights: a.topkWeights, dst: a.out }),
    uniformValues: {
      tokens: a.tokens, hidden: a.hidden, out_stride: a.outStride ?? a.hidden, out_offset: a.outOffset ?? 0,
      accumulate: a.accumulate ? 1 : 0,
    },
    workgroups: [Math.ceil(a.hidden / COMBINE_WG), ty, Math.ceil(a.tokens / Math.max(1, ty))],
  };
}

export interface MoeExpertsArgs {
  readonly dims: MoeDims;
  readonly tokens: number;
  /** Hidden states [T, hidden] f32 (post_attention_layernorm output); stride/offset multiples of 4. */
  readonly x: GPUBuffer;
  readonly xStride?: number;
  readonly xOffset?: number;
  readonly weights: MoeExpertWeights;
  /** Sized by moeScratchBytes for at least `tokens`. */
  readonly scratch: MoeScratch;
  /**
   * Routes first when given (needs scratch.logits): router logits from gateWeight, or with gateWeight null from
   * scratch.logits as the caller's earlier dispatch left them; else scratch.topkIds / topkWeights must hold the routing
   * (tokenSlots(dims) slots a token, the shared experts' included).
   */
  readonly route?: { readonly routing: MoeRouting; readonly gateWeight: GpuTensor | null; readonly bias: GpuTensor | null };
  readonly out: GPUBuffer;
  readonly outStride?: number;
  readonly outOffset?: number;
  readonly accumulate?: boolean;
  /** Force a GEMM form (tests, benchmarks); default moeGemmVariant(dims, tokens, subgroupMatrix). */
  readonly variant?: MoeGemmVariant;
  /** The device runs the subgroup-matrix form (MatmulLimits.subgroupMatrix: gpu.matmulLimits says). */
  readonly subgroupMatrix?: boolean;
  /** Rows per expert from which it does (MatmulLimits.moeMmaMinRows, MOE_MMA_MIN_ROWS; default DEFAULT_MOE_MMA_MIN_ROWS). */
  readonly mmaMinRows?: number;
  /**
   * The device's matmul limits (gpu.matmulLimits): given, the router logits of their routerGemmMinTokens
   * (default ROUTER_GEMM_MIN_TOKENS) tokens or more are the f32 GEMM's (after the norm's own dispatch) instead of
   * route-logits.wgsl's, split over K where the GEMM's tiles leave the device idle (scratch.slotOut, free until
   * the down kernels, holds the partial sums).
   */
  readonly matmulLimits?: MatmulLimits;
  /**
   * x (dense rows) is to be computed first as RMSNorm(prenorm.x)·weight: with the router and fuseRoute, for up
   * to MOE_ROUTE_FUSED_MAX_TOKENS tokens, norm, logits, selection and grouping are one dispatch (route-fused.wgsl).
   */
  readonly prenorm?: { readonly x: GPUBuffer; readonly weight: GpuTensor; readonly eps: number };
  /** With prenorm and the router: fuse them into one dispatch for up to MOE_ROUTE_FUSED_MAX_TOKENS tokens (default false). */
  readonly fuseRoute?: boolean;
  /** Programs to run once routing is done (and x written), before the expert GEMMs: the shared experts. */
  readonly afterRoute?: readonly KernelProgram[];
  /** false: leave scratch.slotOut uncombined (the caller folds the combine into its own dispatch; default true). */
  readonly combine?: boolean;
  /** K splits of gate/up, below one row an expert on the mma tiles (default 1: MOE_GATE_UP_SPLITS_MAX says why). */
  readonly gateUpSplits?: number;
  /**
   * The mma forms' grouped order (MoeExpertGemmArgs.groupTiles). Default: the prefill-sized forms (mma, mma128) in
   * groups of matmulLimits.moeGroupTiles (MOE_GROUP_TILES) tiles, the decode batches' forms tiles first.
   */
  readonly groupTiles?: { readonly gateUp: number; readonly down: number };
}

/**
 * The whole routed-expert sequence: [norm (in the router logits' dispatch when both run)], [router logits, selection (optional)], group, gate/up per chunk
 * segment, down per chunk, [combine]. Up to MOE_ROUTE_FUSED_MAX_TOKENS tokens, selection and grouping are one
 * dispatch (moeSelectGroup); with fuseRoute, norm, logits, selection and grouping are (moeRouteFused).
 */
export function moeExperts(a: MoeExpertsArgs): KernelProgram[] {
  checkDims(a.dims);
  const T = a.tokens;
  if (!Number.isInteger(T) || T < 0) throw new RangeError(`moe: tokens ${T}`);
  if (T === 0) return [];
  const sc = a.scratch;
  const need = { ...moeScratchBytes(a.dims, T), act: T * tokenSlots(a.dims) * a.dims.intermediate * 4 };
  const small: string[] = (['topkIds', 'topkWeights', 'groups', 'act', 'slotOut'] as const).filter((k) => sc[k].size < need[k]);
  if (a.route && (!sc.logits || sc.logits.size < need.logits)) small.push('logits');
  if (small.length > 0) throw new RangeError(`moe: scratch too small for ${T} tokens: ${small.join(', ')}`);
  const variant = a.variant ?? moeGemmVariant(a.dims, T, a.subgroupMatrix ?? false, a.mmaMinRows, a.matmulLimits);
  const programs: KernelProgram[] = [];
  const H = a.dims.hidden;
  if (a.prenorm && ((a.xStride ?? H) !== H || (a.xOffset ?? 0) !== 0)) throw new RangeError('moe: a prenormed x must be dense rows');
  const route = a.route;
  if (route && (route.routing.nExperts !== a.dims.nExperts || route.routing.topK !== a.dims.topK)) throw new RangeError('moe: routing and dims disagree on experts / topK');
  if (route?.gateWeight && route.gateWeight.shape[0] !== a.dims.nExperts) throw new RangeError(`moe: gate weight has ${route.gateWeight.shape[0]} rows for ${a.dims.nExperts} experts`);
  if (route?.gateWeight && a.prenorm && a.fuseRoute && T <= MOE_ROUTE_FUSED_MAX_TOKENS) {
    programs.push(moeRouteFused({
      dims: a.dims, routing: route.routing, tokens: T, x: a.prenorm.x, norm: a.prenorm, xn: a.x, gateWeight: route.gateWeight, bias: route.bias,
      scratch: sc, variant, subgroupSize: a.matmulLimits?.subgroupSize,
    }));
  } else {
    if (route?.gateWeight && a.matmulLimits && T >= (a.matmulLimits.routerGemmMinTokens ?? ROUTER_GEMM_MIN_TOKENS)) {
      // the f32 FMA GEMM, not the subgroup-matrix one: transformers routes on f32 logits, and f16 operands could
      // flip near-tied experts
      if (a.prenorm) programs.push(rmsNorm({ x: a.prenorm.x, weight: a.prenorm.weight, y: a.x, rows: T, cols: H, eps: a.prenorm.eps }));
      programs.push(...matmulPrograms({
        x: a.x, xStride: a.xStride, xOffset: a.xOffset, weight: route.gateWeight, y: sc.logits!, M: T, N: a.dims.nExperts, K: H, variant: 'gemm',
        splitK: { scratch: sc.slotOut },
      }, a.matmulLimits));
    } else if (route?.gateWeight && a.prenorm) {
      // the router logits kernel norms its rows itself and writes them out for the experts: no norm dispatch
      const p = a.prenorm;
      programs.push(moeRouterLogits({
        x: p.x, gateWeight: route.gateWeight, logits: sc.logits!, tokens: T, hidden: H, norm: { weight: p.weight, eps: p.eps, xn: a.x },
      }));
    } else {
      if (a.prenorm) programs.push(rmsNorm({ x: a.prenorm.x, weight: a.prenorm.weight, y: a.x, rows: T, cols: H, eps: a.prenorm.eps }));
      if (route?.gateWeight) {
        programs.push(moeRouterLogits({
          x: a.x, xStride: a.xStride, xOffset: a.xOffset, gateWeight: route.gateWeight, logits: sc.logits!, tokens: T, hidden: H,
        }));
      }
    }
    if (route && T <= MOE_ROUTE_FUSED_MAX_TOKENS) {
      programs.push(moeSelectGroup({ dims: a.dims, routing: route.routing, tokens: T, scratch: sc, bias: route.bias, variant, subgroupSize: a.matmulLimits?.subgroupSize }));
    } else {
      if (route) {
        programs.push(moeRouteSelect({
          routing: route.routing, logits: sc.logits!, bias: route.bias, topkIds: sc.topkIds, topkWeights: sc.topkWeights, tokens: T,
          sharedExperts: a.dims.sharedExperts ?? 0,
        }));
      }
      programs.push(moeGroup({ dims: a.dims, tokens: T, topkIds: sc.topkIds, groups: sc.groups, variant, subgroupSize: a.matmulLimits?.subgroupSize }));
    }
  }
  // the prefill-sized forms (64-row tiles and up) in grouped order; a columns-first down keeps its own
  const shape = shapeOf(variant);
  const prefillSized = shape.kind === 'mma' && shape.TM >= 64 && !shape.DOWN_COLUMNS_FIRST;
  const defaultGroup = prefillSized ? a.matmulLimits?.moeGroupTiles ?? 0 : 0;
  const groupTiles = a.groupTiles ?? (defaultGroup > 0 ? { gateUp: defaultGroup, down: defaultGroup } : undefined);
  // where the combine goes: its own dispatch, or (one token) the experts' down GEMV
  const combine = { out: a.out, outStride: a.outStride, outOffset: a.outOffset, accumulate: a.accumulate };
  const maxInvocations = a.matmulLimits?.maxComputeInvocationsPerWorkgroup;
  const combineInDown = a.combine !== false && (a.matmulLimits?.moeDownCombine ?? true) && canCombineInDown(T, variant, a.dims, a.weights.down, maxInvocations);
  programs.push(
    ...(a.afterRoute ?? []),
    ...moeExpertGemms({
      dims: a.dims, tokens: T, x: a.x, xStride: a.xStride, xOffset: a.xOffset, weights: a.weights,
      groups: sc.groups, act: sc.act, slotOut: sc.slotOut, variant,
      gateUpSplits: a.gateUpSplits ?? 1, subgroupSize: a.matmulLimits?.subgroupSize, ...(groupTiles ? { groupTiles } : {}),
      ...(a.matmulLimits?.linearStagingRows ? { linearRows: true } : {}),
      ...(combineInDown ? { combine: { ...combine, topkIds: sc.topkIds, topkWeights: sc.topkWeights, maxInvocations } } : {}),
    }),
    ...(a.combine === false || combineInDown ? [] : [moeCombine({
      topK: tokenSlots(a.dims), tokens: T, hidden: a.dims.hidden, slotOut: sc.slotOut, topkWeights: sc.topkWeights, ...combine,
    })]),
  );
  return programs;
}

export const moeGroupShader = defineKernel('moe_group', build_moeGroupShader);

export const moeRouteFusedShader = defineKernel('moe_route_fused', build_moeRouteFusedShader);

export const moeSelectGroupShader = defineKernel('moe_select_group', build_moeSelectGroupShader);

export const moeGateUpShader = defineKernel('moe_gate_up', build_moeGateUpShader);

export const moeDownShader = defineKernel('moe_down', build_moeDownShader);

export const moeCombineShader = defineKernel('moe_combine', build_moeCombineShader);

export const moeDownCombineShader = defineKernel('moe_down_combine', build_moeDownCombineShader);
