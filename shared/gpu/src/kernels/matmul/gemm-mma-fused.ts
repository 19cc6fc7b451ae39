// The decode step's fusions on the subgroup-matrix GEMM (gemm-mma.wgsl's fused forms), for batches past the fused
// GEMV's rows: q ‖ kv_a as one dispatch over two weights, the MLP's down projection over silu(gate)·up, and the
// shared experts' down with the routed experts' combine in its epilogue. Same arguments as the fused GEMV
// (gemv-fused.ts); `fusedMatmul` takes whichever applies. Each replaces 2–4 dispatches of a batch-64 decode
// layer (a split GEMM's partial products and their sum, the silu·mul, the combine): a dispatch costs the step its
// ramp and drain (~7 µs on an H100 for a memory-bound one, bench:read-patterns) besides its work.
import type { KernelProgram } from '../../runtime/program.js';
import { shaderBuffers } from '../../runtime/bindings.js';
import { checkFusedArgs, fusedGemv, type FusedGemvArgs } from './gemv-fused.js';
import { defaultMmaTile, type MatmulLimits } from './matmul.js';
import { gemmMmaShader, MMA_TILES, type GemmMmaFuse } from './gemm-mma.js';

/** Most rows the fused GEMM takes: past decode batches the unfused GEMMs (split or not) are the better plan. */
export const FUSED_GEMM_MAX_M = 128;
/**
 * Most K-loop trips of a fused GEMM whose workgroups do not fill the device: it never splits K, so a deeper
 * product (a dense MLP's down at K = 10944: 86 trips) keeps the unfused, split dispatches.
 */
export const FUSED_GEMM_MAX_TRIPS = 24;

/**
 * The fused subgroup-matrix GEMM, or null where it does not apply: no subgroup matrices (or limits.fusedGemm
 * false), M outside
 * (0, FUSED_GEMM_MAX_M], nothing to fuse (one output, no silu, no combine: matmulPrograms), a norm (it stays a
 * dispatch before), mixed weight dtypes, rows not in whole 16-byte words, a K too deep to run unsplit, or more
 * storage bindings than the device allows.
 */
export function fusedGemm(a: FusedGemvArgs, limits?: MatmulLimits): KernelProgram | null {
  const { M, K, outputs } = a;
  const [o1, o2] = outputs;
  if (!limits?.subgroupMatrix || limits.fusedGemm === false || !Number.isInteger(M) || M < 1 || M > FUSED_GEMM_MAX_M) return null;
  checkFusedArgs(a, 'fusedGemm');
  if (a.norm || (!o2 && !a.silu && !a.combine)) return null;
  const dtype = o1.weight.dtype;
  if (outputs.some((o) => o.weight.dtype !== dtype)) return null;
  const xStride = a.xStride ?? (a.silu ? 2 * K : K), xOffset = a.xOffset ?? 0;
  if (K % 8 !== 0 || xStride % 4 !== 0 || xOffset % 4 !== 0) return null;
  const pick = defaultMmaTile(M, (BN) => outputs.reduce((n, o) => n + Math.ceil(o.N / BN), 0), limits);
  if (!pick) return null;
  const tile = MMA_TILES[pick.name];
  if (!pick.fills && Math.ceil(K / tile.BK) > FUSED_GEMM_MAX_TRIPS) return null;
  const c = a.combine;
  const fuse: GemmMmaFuse = { ...(o2 ? { second: true } : {}), ...(a.silu ? { silu: true } : {}), ...(c ? { combine: c.topK } : {}) };
  const shader = gemmMmaShader({ dtype, tile, accumulate: a.accumulate ?? false, fuse });
  if (shader.bindings!.length > (limits.maxStorageBuffersPerShaderStage ?? 8)) return null;
  const tiles1 = Math.ceil(o1.N / tile.BN);
  return {
    shader,
    buffers: shaderBuffers(shader, { x: a.x, w: o1.weight.buffer, y: o1.y, w2: o2?.weight.buffer, y2: o2?.y, slot_out: c?.slotOut, slot_w: c?.weights }),
    uniformValues: {
      M, N: o1.N, K, x_stride: xStride, x_offset: xOffset, y_stride: o1.yStride ?? o1.N, y_offset: o1.yOffset ?? 0, w_offset: 0,
      k_split: K, split_stride: 0, N2: o2?.N ?? 0, y2_stride: o2?.yStride ?? o2?.N ?? 0, y2_offset: o2?.yOffset ?? 0, w2_offset: 0, tiles1,
    },
    workgroups: [tiles1 + (o2 ? Math.ceil(o2.N / tile.BN) : 0), Math.ceil(M / tile.BM)],
  };
}

/** The fused GEMV where it takes the arguments, else the fused GEMM, else null (run the unfused dispatches). */
export function fusedMatmul(a: FusedGemvArgs, limits?: MatmulLimits): KernelProgram | null {
  return fusedGemv(a, limits) ?? fusedGemm(a, limits);
}
