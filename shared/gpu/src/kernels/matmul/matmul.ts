// y = x · Wᵀ (or y += x · Wᵀ) for f32 activations x [M, K] and a weight W stored as HF Linear weights [N, K]
// in bf16, f16 or f32. Two regimes behind one launcher: a GEMV-style kernel for small M (decode), which reads
// the weight once at memory bandwidth, and a tiled GEMM for larger M (prefill), compute-bound on f32 FMA.
// Shapes, strides and offsets are uniforms; dtype, alignment, tile shape and accumulate are compile-time.
import type { BufferBinding, KernelProgram } from '../../runtime/program.js';
import { type GpuTensor } from '../weight-dtype.js';
import { weightBytes } from '@latentwire/model';
import { matmulBuffers, weightsPerVec, type MatmulAlign } from './common.js';
import { gemvConfig, gemvRowsPerWorkgroup, gemvShader, gemvSubgroupReduce, gemvWorkgroupBytes, type GemvConfig } from './gemv.js';
import { GEMM_TILES, gemmInvocations, gemmShader, gemmSlabBytes, type GemmTile, type GemmTileName } from './gemm.js';
import { MMA_TILES, gemmMmaShader, mmaWorkgroupBytes, mmaWorkgroupSize, type MmaTile, type MmaTileName } from './gemm-mma.js';
import { splitReduce } from './split-reduce.js';

export { GEMM_TILES, type GemmTile, type GemmTileName } from './gemm.js';
export { MMA_TILES, type MmaTile, type MmaTileName } from './gemm-mma.js';
export type { GemvConfig } from './gemv.js';

/** Largest M the launcher sends to the GEMV variant by default (on an H100 it beat every GEMM tile to M = 16). */
export const GEMV_MAX_M = 16;
/**
 * Largest M the GEMV takes by default where the subgroup-matrix GEMM runs: 9..16 rows go to the GEMM. In the
 * batch-16 decode step on the H100 (12-06, decode-profile) the 16-row GEMVs took 96 µs a dispatch (q, kv_a, the
 * shared gate ‖ up) and 48 (the accumulating ones), 7.9 ms of the step, where batch 64's 32 × 64 GEMMs take 30.
 */
export const GEMV_MMA_MAX_M = 8;
/** Largest M the GEMV variant can be forced to. */
export const GEMV_LIMIT_M = 16;

/** gemv: small M, bandwidth-bound; gemm: f32 FMA tiles; gemm-mma: subgroup-matrix (tensor-core) tiles. */
export type MatmulVariant = 'gemv' | 'gemm' | 'gemm-mma';

export interface MatmulArgs {
  readonly x: GPUBuffer;
  readonly weight: GpuTensor;
  readonly y: GPUBuffer;
  readonly M: number;
  readonly N: number;
  readonly K: number;
  /** Elements; rows of x may be strided (default K, 0). */
  readonly xStride?: number;
  readonly xOffset?: number;
  /** Elements; rows of y may be strided, e.g. to write a column slice of a wider buffer (default N, 0). */
  readonly yStride?: number;
  readonly yOffset?: number;
  /** Element offset into the weight buffer (one expert of stacked experts); even for 16-bit dtypes. */
  readonly weightOffset?: number;
  /** y += x·Wᵀ (fuses a residual add) instead of y = x·Wᵀ. */
  readonly accumulate?: boolean;
  /**
   * x's element type (default f32). f16 activations run on the subgroup-matrix GEMM only (its operands are f16
   * anyway: the same products as f32 x rounded to f16, with half the bytes staged); strides and offsets are in
   * elements, multiples of 4. No producer writes f16 activations: on the H200 they made every tile 1.2–5× slower
   * (bench/results/matmul-x16.h200.txt).
   */
  readonly xDtype?: 'f32' | 'f16';
  /**
   * Forces a regime (default: GEMV for M ≤ GEMV_MAX_M, else the subgroup-matrix GEMM where the limits allow it
   * and rows load as 16-byte words, else the f32 GEMM). GEMV needs M ≤ GEMV_LIMIT_M.
   */
  readonly variant?: MatmulVariant;
  /** Forces the subgroup-matrix tile (default: picked from M and N). */
  readonly mmaTile?: MmaTileName;
  /**
   * The subgroup-matrix GEMM's blocks taken in groups of this many rows of blocks, down then across, so the
   * workgroups in flight share their x rows and W blocks in the L2 cache (0: x fastest). Default: the limits'
   * groupRows (MATMUL_GROUP_ROWS) where the grid has more rows of blocks than that, else x fastest (so decode
   * batches' few rows of blocks keep their order).
   */
  readonly groupRows?: number;
  /** Forces the GEMM tile, by name or shape (default: picked from M, N and the limits). */
  readonly tile?: GemmTileName | GemmTile;
  /** Overrides fields of the picked GEMV shape (tuning; the result must fit the limits). */
  readonly gemv?: Partial<GemvConfig>;
  /**
   * Split-K for the GEMM variants (matmulPrograms only): K cut into `splits` ranges, each its own workgroups, whose
   * partial products [splits, M, N] go to `scratch` and are summed into y by a second dispatch. For batches whose
   * tiles do not fill the device, where a workgroup's K loop is the whole time. Without `splits`, the limits'
   * splitKMax and the device's slots decide (1: no split); the scratch must hold splits · M · N f32.
   */
  readonly splitK?: { readonly scratch: GPUBuffer; readonly splits?: number };
}

/** The device limits the launcher sizes its variants by; `gpu.limits` fits. Defaults are WebGPU's minimums. */
export interface MatmulLimits {
  readonly maxComputeWorkgroupStorageSize?: number;
  readonly maxComputeInvocationsPerWorkgroup?: number;
  readonly maxComputeWorkgroupsPerDimension?: number;
  readonly minStorageBufferOffsetAlignment?: number;
  /** Storage bindings a shader may declare (the fused GEMV with the norm, two outputs and its normed rows takes 7; default 8). */
  readonly maxStorageBuffersPerShaderStage?: number;
  /** The device runs the subgroup-matrix variants (`gpu.matmulLimits` says; default false). */
  readonly subgroupMatrix?: boolean;
  /** The device's full workgroup slots (gpu.workgroupSlots), which tile choices fill the device by. */
  readonly workgroupSlots?: number;
  /** Rows per expert from which routed experts run on subgroup matrices (MOE_MMA_MIN_ROWS; default DEFAULT_MOE_MMA_MIN_ROWS). */
  readonly moeMmaMinRows?: number;
  /** The subgroup-matrix GEMM's blocks in groups of this many rows of blocks where it has more (MATMUL_GROUP_ROWS; default 0: x fastest). */
  readonly groupRows?: number;
  /** The prefill-sized routed experts' row tiles in groups of this many (MOE_GROUP_TILES; default 0: tiles first). */
  readonly moeGroupTiles?: number;
  /** Tests and benches: the subgroup-matrix GEMMs' and experts' lanes stage consecutive slab rows (staging-rows.ts; default false: spread). */
  readonly linearStagingRows?: boolean;
  /** Most K splits a GEMM whose tiles do not fill the device is cut into by default (MATMUL_SPLIT_K_MAX; default 1: none). */
  readonly splitKMax?: number;
  /** Tokens from which MoE router logits are a GEMM's (MOE_ROUTER_GEMM_MIN_TOKENS; default ROUTER_GEMM_MIN_TOKENS). */
  readonly routerGemmMinTokens?: number;
  /** Fused-norm / SiLU GEMVs stage their transformed input rows in workgroup memory where they fit (GEMV_STAGE_INPUT; default true). */
  readonly gemvStageInput?: boolean;
  /** One token's MoE combine done by its down GEMV instead of a dispatch of its own (MOE_DOWN_COMBINE; default true). */
  readonly moeDownCombine?: boolean;
  /**
   * The device's one subgroup size, where GEMVs (and head_matmul, the MoE grouping) may add across invocations by
   * subgroup operations (Gpu.uniformSubgroupSize unless SUBGROUP_REDUCE is false; absent: through workgroup memory).
   */
  readonly subgroupSize?: number;
}

/** What the launcher decided, for tests and benchmarks. */
export type MatmulPlan =
  | { readonly variant: 'gemv'; readonly config: GemvConfig; readonly align: MatmulAlign }
  | { readonly variant: 'gemm'; readonly tile: GemmTile; readonly tileName: string; readonly doubleBuffer: boolean; readonly align: MatmulAlign; readonly split: KSplit }
  | { readonly variant: 'gemm-mma'; readonly tile: MmaTile; readonly tileName: MmaTileName; readonly align: MatmulAlign; readonly split: KSplit };

/** How a GEMM's K is cut: `splits` ranges of `kSplit` (a multiple of the tile's BK; the last may be shorter). */
export interface KSplit {
  readonly splits: number;
  readonly kSplit: number;
}

/**
 * A tile is taken when it makes at least 2/3 of the device's full workgroup slots (1 per SM on an H200: 88 of
 * 132), else the next smaller one: on an H100 a 128×128 tile at 96 workgroups still beat 64×64 ones at 384.
 * Without the slots (limits given by hand) the largest tile that fits is taken.
 */
function minWorkgroups(slots: number | undefined): number {
  return slots === undefined ? 1 : Math.ceil((2 * slots) / 3);
}

function checkCount(name: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min) throw new RangeError(`matmul: ${name} must be an integer >= ${min}, got ${v}`);
}

function limitsOf(l: MatmulLimits | undefined) {
  return {
    wgBytes: l?.maxComputeWorkgroupStorageSize ?? 16384,
    invocations: l?.maxComputeInvocationsPerWorkgroup ?? 256,
    perDim: l?.maxComputeWorkgroupsPerDimension ?? 65535,
    offsetAlign: l?.minStorageBufferOffsetAlignment ?? 256,
    matrix: l?.subgroupMatrix ?? false,
    minWorkgroups: minWorkgroups(l?.workgroupSlots),
    // 8-subgroup tiles (one a streaming multiprocessor) from one and a half waves: on 128 workgroups (one wave)
    // 2048 × 2048 × 10944 took 1.31 ms against 0.57 on 256 of 128 × 128 (prefill-tiles-ab.h100.txt), but on 256
    // (4096 × 2048 × 2048 / × 1408) 128 × 256 beat 128 × 128 by 5–9% on the H200 and the H100 alike
    // (matmul-x16.h200.txt, matmul-k64.h100.txt: 0.213 / 0.154 against 0.224 / 0.169 ms)
    bigTileWorkgroups: l?.workgroupSlots === undefined ? 1 : Math.ceil(1.5 * l.workgroupSlots),
  };
}

/** Fewest K-loop trips a split keeps by default: shorter ones would trade the loop's latency for the sum's traffic. */
const SPLIT_MIN_TRIPS = 4;

/**
 * The default split count of a kernel of `workgroups` workgroups whose K loop takes `trips` slabs: enough splits
 * for twice the device's slots, at least SPLIT_MIN_TRIPS slabs a split, at most limits.splitKMax (1 without the
 * slots).
 */
function splitsToFill(workgroups: number, trips: number, limits: MatmulLimits | undefined): number {
  const slots = limits?.workgroupSlots;
  if (slots === undefined) return 1;
  return Math.max(1, Math.min(limits?.splitKMax ?? 1, Math.floor(trips / SPLIT_MIN_TRIPS), Math.ceil((2 * slots) / workgroups)));
}

/**
 * The K split of a GEMM of `workgroups` tiles and `BK`-deep slabs. By default (a.splitK without splits) only
 * where the tiles make fewer workgroups than 2/3 of the device's slots: up to twice the slots, at least
 * SPLIT_MIN_TRIPS slabs a split, at most limits.splitKMax splits, and as many as the scratch holds.
 */
function kSplitOf(a: MatmulArgs, lim: ReturnType<typeof limitsOf>, limits: MatmulLimits | undefined, workgroups: number, BK: number): KSplit {
  const { M, N, K } = a;
  const trips = Math.ceil(K / BK);
  const none = { splits: 1, kSplit: trips * BK };
  if (!a.splitK) return none;
  const room = Math.floor(a.splitK.scratch.size / (M * N * 4));
  let want: number;
  if (a.splitK.splits !== undefined) {
    want = a.splitK.splits;
    checkCount('splitK.splits', want, 1);
    if (want > trips) throw new RangeError(`matmul: splitK.splits ${want} exceeds the ${trips} K slabs of ${BK}`);
    if (want > room) throw new RangeError(`matmul: splitK scratch (${a.splitK.scratch.size} bytes) holds ${room} splits of M·N f32, ${want} asked`);
  } else {
    if (workgroups >= lim.minWorkgroups) return none;
    want = Math.min(splitsToFill(workgroups, trips, limits), room);
  }
  if (want <= 1) return none;
  const kSplit = Math.ceil(trips / want) * BK;
  // no empty splits: the count follows from the rounded range
  return { splits: Math.ceil(K / kSplit), kSplit };
}

/** Picks the variant, tile and alignment paths for these arguments (validated by `matmul`). */
/**
 * Subgroup-matrix tiles tried by default, largest first: the first whose workgroups fill the device wins, else the
 * last. At V2-Lite's decode projections (M = 64, H200, GPU timestamps, bench/results/matmul-decode.h200.txt) the
 * 32 × 64 tile (twice the workgroups of 64 × 64) took 0.021–0.026 ms against 0.026–0.036 for 64 × 64 and
 * 0.021–0.029 for 32 × 32 and 64 × 32.
 * At prefill sizes the 128 × 256 tile (8 subgroups; each slab staged once for twice the products, which is what
 * the trips wait on: bench/results/mma-peak.h100.txt) beat 128 × 128 on the H100 (matmul-tiles.h100.txt, 4096 rows):
 * N = 3072 / 10944 at K = 2048 0.310 / 1.055 ms against 0.320 / 1.134 (N = 2048: 0.219 / 0.223), K = 1408 0.340 vs
 * 0.395; 256 × 128 and 128 × 128 with 8 subgroups were 2–4× slower. It is taken from one and a half waves of
 * workgroups (one wave of fewer, longer chains lost), and a tile that pads N by more than an eighth is passed over
 * (kv_a's 576 columns: 768 on 256-wide tiles).
 */
const MMA_DEFAULT_ORDER: readonly MmaTileName[] = ['m128x256', 'm128x128', 'm64x64k128', 'm32x64k128'];

export function matmulPlan(a: MatmulArgs, limits?: MatmulLimits, wOffsetInBinding = a.weightOffset ?? 0): MatmulPlan {
  const lim = limitsOf(limits);
  const { M, N, K } = a;
  const xStride = a.xStride ?? K, xOffset = a.xOffset ?? 0;
  const vpw = weightsPerVec(a.weight.dtype);
  const align: MatmulAlign = {
    vecX: K % 4 === 0 && xStride % 4 === 0 && xOffset % 4 === 0,
    vecW: K % vpw === 0 && wOffsetInBinding % vpw === 0,
  };
  const mmaFits = (t: MmaTile) => mmaWorkgroupSize(t) <= lim.invocations && mmaWorkgroupBytes(t) <= lim.wgBytes;
  // by default from M = GEMV_MMA_MAX_M + 1 on, also where its tiles do not fill the device: at decode batches of 32–128 rows
  // (V2-Lite shapes, H200) the 64 × 64 subgroup-matrix tile took 0.039–0.050 ms where the f32 GEMM's smaller
  // tiles took 0.080–0.159 (both latency-bound on the K loop, the f32 one twice as long); with 64-deep slabs
  // 0.031–0.042, 128-deep 0.026–0.036. M ≤ 8 stays on the GEMV: 0.009–0.025 ms against 0.026–0.035 on the
  // 128-deep tile; M = 16 was a draw alone (0.020–0.044 vs 0.025–0.034 over N = 576..3072) but not in the step
  const mmaByDefault = lim.matrix && align.vecX && align.vecW && a.tile === undefined &&
    (Object.values(MMA_TILES) as MmaTile[]).some(mmaFits);
  const variant = a.variant ?? (M <= (mmaByDefault ? GEMV_MMA_MAX_M : GEMV_MAX_M) ? 'gemv' : mmaByDefault ? 'gemm-mma' : 'gemm');
  if (variant === 'gemm-mma') {
    if (!lim.matrix) throw new RangeError("matmul: variant 'gemm-mma' needs a device with subgroup matrices (MatmulLimits.subgroupMatrix)");
    if (!align.vecX || !align.vecW) throw new RangeError(`matmul: variant 'gemm-mma' needs K, strides and offsets in whole 16-byte words (K = ${K})`);
    const names = (a.mmaTile !== undefined ? [a.mmaTile] : MMA_DEFAULT_ORDER).filter((n) => {
      if (!Object.hasOwn(MMA_TILES, n)) throw new RangeError(`matmul: unknown subgroup-matrix tile '${n}'`);
      return mmaFits(MMA_TILES[n]);
    });
    if (names.length === 0) throw new RangeError('matmul: no subgroup-matrix tile fits the device limits');
    const count = (n: MmaTileName) => Math.ceil(M / MMA_TILES[n].BM) * Math.ceil(N / MMA_TILES[n].BN);
    const padsLittle = (n: MmaTileName) => a.mmaTile !== undefined || Math.ceil(N / MMA_TILES[n].BN) * MMA_TILES[n].BN - N <= N / 8;
    // 8-subgroup tiles from one and a half waves (limitsOf: bigTileWorkgroups)
    const fills = (n: MmaTileName) => count(n) >= (mmaWorkgroupSize(MMA_TILES[n]) > 128 ? lim.bigTileWorkgroups : lim.minWorkgroups);
    const tileName = names.find((n) => fills(n) && padsLittle(n)) ?? names[names.length - 1]!;
    const tile = MMA_TILES[tileName];
    return { variant, tile, tileName, align, split: kSplitOf(a, lim, limits, count(tileName), tile.BK) };
  }
  if (variant === 'gemv') {
    if (M > GEMV_LIMIT_M) throw new RangeError(`matmul: variant 'gemv' needs M <= ${GEMV_LIMIT_M}, got M = ${M}`);
    const config = { ...gemvConfig(M, N, lim.invocations, lim.wgBytes), ...a.gemv };
    if (!(config.T >= 1 && (config.T & (config.T - 1)) === 0)) throw new RangeError(`matmul: GEMV T ${config.T} must be a power of two`);
    if (config.MB < M || config.MB > GEMV_LIMIT_M) throw new RangeError(`matmul: GEMV MB ${config.MB} must be in [M, ${GEMV_LIMIT_M}]`);
    if (gemvWorkgroupBytes(config) > lim.wgBytes || config.T * config.RG > lim.invocations) {
      throw new RangeError(`matmul: GEMV shape ${JSON.stringify(config)} does not fit the device limits`);
    }
    return { variant, config, align };
  }
  const fits = (t: GemmTile) => gemmInvocations(t) <= lim.invocations && gemmSlabBytes(t) <= lim.wgBytes;
  let tileName: string | undefined;
  let tile: GemmTile;
  if (typeof a.tile === 'object') {
    tile = a.tile;
    tileName = 'custom';
    if (!fits(tile)) throw new RangeError(`matmul: tile ${JSON.stringify(tile)} does not fit the device limits`);
  } else if (a.tile !== undefined) {
    tileName = a.tile;
    if (!Object.hasOwn(GEMM_TILES, tileName)) throw new RangeError(`matmul: unknown tile '${tileName}'`);
    tile = GEMM_TILES[a.tile];
    if (!fits(tile)) throw new RangeError(`matmul: tile '${tileName}' does not fit the device limits`);
  } else {
    const names = (Object.keys(GEMM_TILES) as GemmTileName[]).filter((n) => fits(GEMM_TILES[n]));
    if (names.length === 0) throw new RangeError('matmul: no GEMM tile fits the device limits');
    const count = (n: GemmTileName) => Math.ceil(M / GEMM_TILES[n].BM) * Math.ceil(N / GEMM_TILES[n].BN);
    const name = names.find((n) => count(n) >= lim.minWorkgroups) ?? names[names.length - 1]!;
    tileName = name;
    tile = GEMM_TILES[name];
  }
  const split = kSplitOf(a, lim, limits, Math.ceil(M / tile.BM) * Math.ceil(N / tile.BN), tile.BK);
  return { variant, tile, tileName, doubleBuffer: 2 * gemmSlabBytes(tile) <= lim.wgBytes, align, split };
}

/** y = x·Wᵀ (or y += x·Wᵀ): one dispatch (never split). Pass `gpu.limits` so tile variants are sized to the device. */
export function matmul(a: MatmulArgs, limits?: MatmulLimits): KernelProgram {
  return matmulPrograms({ ...a, splitK: undefined }, limits)[0]!;
}

/** matmul, or with a.splitK where the plan splits K: the partial GEMM and the sum into y (two dispatches). */
export function matmulPrograms(a: MatmulArgs, limits?: MatmulLimits): KernelProgram[] {
  const { M, N, K, weight } = a;
  checkCount('M', M, 1);
  checkCount('N', N, 1);
  checkCount('K', K, 1);
  const xStride = a.xStride ?? K, xOffset = a.xOffset ?? 0;
  const yStride = a.yStride ?? N, yOffset = a.yOffset ?? 0;
  const weightOffset = a.weightOffset ?? 0;
  checkCount('xStride', xStride, K);
  checkCount('xOffset', xOffset, 0);
  checkCount('yStride', yStride, N);
  checkCount('yOffset', yOffset, 0);
  checkCount('weightOffset', weightOffset, 0);
  const dtype = weight.dtype;
  if (dtype !== 'bf16' && dtype !== 'f16' && dtype !== 'f32') throw new RangeError(`matmul: weight dtype '${dtype}' unsupported`);
  if (dtype !== 'f32' && weightOffset % 2 !== 0) {
    throw new RangeError(`matmul: weightOffset ${weightOffset} must be even for packed ${dtype} weights`);
  }
  const shape = weight.shape;
  if (shape.length < 1 || shape[shape.length - 1] !== K) {
    throw new RangeError(`matmul: K ${K} does not match the weight's last dimension (shape [${shape}])`);
  }
  const numel = shape.reduce((p, d) => p * d, 1);
  if (weightOffset + N * K > numel) {
    throw new RangeError(`matmul: N ${N} rows of K ${K} at weightOffset ${weightOffset} exceed the weight (shape [${shape}])`);
  }
  if (a.x === a.y) throw new RangeError('matmul: x and y must be different buffers');
  if (a.splitK && (a.splitK.scratch === a.x || a.splitK.scratch === a.y)) throw new RangeError('matmul: the splitK scratch must be a buffer of its own');
  const xF16 = a.xDtype === 'f16';
  if (a.xDtype !== undefined && a.xDtype !== 'f32' && !xF16) throw new RangeError(`matmul: x dtype '${a.xDtype}' unsupported`);
  const xNeed = (xOffset + (M - 1) * xStride + K) * (xF16 ? 2 : 4);
  if (xNeed > a.x.size) throw new RangeError(`matmul: x buffer (${a.x.size} bytes) is smaller than M, K, xStride, xOffset need (${xNeed})`);
  const yNeed = (yOffset + (M - 1) * yStride + N) * 4;
  if (yNeed > a.y.size) throw new RangeError(`matmul: y buffer (${a.y.size} bytes) is smaller than M, N, yStride, yOffset need (${yNeed})`);
  const wEnd = weightBytes(dtype, weightOffset + N * K);
  if (wEnd > weight.buffer.size) {
    throw new RangeError(`matmul: weight buffer (${weight.buffer.size} bytes) is smaller than weightOffset + N·K need (${wEnd})`);
  }

  // Bind only the weight rows used, from an aligned byte offset: stacked experts can exceed the binding limit.
  const lim = limitsOf(limits);
  const elemBytes = dtype === 'f32' ? 4 : 2;
  const wStart = weightOffset * elemBytes;
  const bindOffset = Math.floor(wStart / lim.offsetAlign) * lim.offsetAlign;
  const bindSize = Math.min(Math.ceil((wEnd - bindOffset) / 16) * 16, weight.buffer.size - bindOffset);
  const wOffsetInBinding = (wStart - bindOffset) / elemBytes;
  const wBinding: BufferBinding = { buffer: weight.buffer, offset: bindOffset, size: bindSize };

  const plan = matmulPlan(a, limits, wOffsetInBinding);
  if (xF16 && plan.variant !== 'gemm-mma') {
    throw new RangeError(`matmul: f16 x needs the subgroup-matrix GEMM (the plan is '${plan.variant}'${plan.variant === 'gemv' ? `: M ${M} is in the GEMV range` : ''})`);
  }
  const accumulate = a.accumulate ?? false;
  const uniformValues = {
    M, N, K, x_stride: xStride, x_offset: xOffset, y_stride: yStride, y_offset: yOffset, w_offset: wOffsetInBinding,
  };
  const buffers = matmulBuffers({ x: a.x, w: wBinding, y: a.y });
  if (plan.variant === 'gemv') {
    const blocks = Math.ceil(N / gemvRowsPerWorkgroup(plan.config));
    const gx = Math.min(blocks, lim.perDim);
    return [{
      shader: gemvShader({
        dtype, align: plan.align, config: plan.config, accumulate,
        ...(gemvSubgroupReduce(plan.config.T, limits?.subgroupSize) ? { subgroupReduce: true } : {}),
      }),
      buffers,
      uniformValues,
      workgroups: [gx, Math.ceil(blocks / gx)],
    }];
  }
  const { splits, kSplit } = plan.split;
  const grid = [Math.ceil(N / plan.tile.BN), Math.ceil(M / plan.tile.BM)] as const;
  const limitGroup = limits?.groupRows ?? 0;
  const groupRows = a.groupRows ?? (grid[1] > limitGroup ? limitGroup : 0);
  const gemm = (acc: boolean) => plan.variant === 'gemm-mma'
    ? gemmMmaShader({ dtype, tile: plan.tile, accumulate: acc, ...(xF16 ? { xF16 } : {}), ...(groupRows > 0 ? { groupRows } : {}), ...(limits?.linearStagingRows ? { linearRows: true } : {}) })
    : gemmShader({ dtype, align: plan.align, tile: plan.tile, doubleBuffer: plan.doubleBuffer, accumulate: acc });
  if (splits === 1) return [{ shader: gemm(accumulate), buffers, uniformValues: { ...uniformValues, k_split: K, split_stride: 0 }, workgroups: grid }];
  // the splits' partial products, dense [splits, M, N] in the scratch, then their sum into y
  const scratch = a.splitK!.scratch;
  return [
    {
      shader: gemm(false),
      buffers: matmulBuffers({ x: a.x, w: wBinding, y: scratch }),
      uniformValues: { ...uniformValues, y_stride: N, y_offset: 0, k_split: kSplit, split_stride: M * N },
      workgroups: [grid[0], grid[1], splits],
    },
    splitReduce({ part: scratch, y: a.y, M, N, splits, splitStride: M * N, yStride, yOffset, accumulate, maxWorkgroupsPerDimension: lim.perDim }),
  ];
}
