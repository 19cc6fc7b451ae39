// The GEMV with the decode step's fusions (gemv.ts, GemvFuse): y = f(x)·W₁ᵀ (and y₂ = f(x)·W₂ᵀ) in one dispatch, f(x) being x, RMSNorm(x)·w (the normed rows optionally written out too) or silu(gate)·up.
// Returns null where the GEMV cannot take the shapes (M above FUSED_GEMV_MAX_M, mixed weight dtypes, the
// workgroup or storage-binding limits): the caller then runs the unfused dispatches.
import type { KernelProgram } from '../../runtime/program.js';
import { shaderBuffers } from '../../runtime/bindings.js';
import type { GpuTensor } from '../weight-dtype.js';
import { weightBytes } from '@latentwire/model';
import { weightsPerVec, type MatmulAlign } from './common.js';
import { GEMV_LIMIT_M, GEMV_MAX_M, type MatmulLimits } from './matmul.js';

/**
 * Most rows the fused GEMV takes: 9..16 rows keep the unfused dispatches. Its 16-row shapes (16 vec4
 * accumulators, the fused loads unrolled 4 deep, twice over for two weights) are large shaders, which lavapipe
 * took minutes to compile (an unfused 16-row GEMV ~100 s on the loaded 2-core machine, 8 rows a few seconds).
 */
export const FUSED_GEMV_MAX_M = 8;
import { gemvConfig, gemvFuseBytes, gemvRowsPerWorkgroup, gemvShader, gemvStageVec4s, gemvSubgroupReduce, gemvWorkgroupBytes, type GemvFuse } from './gemv.js';

export interface FusedGemvOutput {
  readonly weight: GpuTensor;
  readonly y: GPUBuffer;
  readonly N: number;
  /** Elements (default N, 0). */
  readonly yStride?: number;
  readonly yOffset?: number;
}

export interface FusedGemvArgs {
  readonly x: GPUBuffer;
  readonly M: number;
  /** The products' depth (with `silu`, the width of the gate and of the up half). */
  readonly K: number;
  /** Elements (default K, or 2K with silu; 0). */
  readonly xStride?: number;
  readonly xOffset?: number;
  /** x rows RMSNorm'd first: y = (x / rms(x) · w)·Wᵀ. */
  readonly norm?: { readonly weight: GpuTensor; readonly eps: number };
  /** With norm: the normed rows written here too ([M, K] dense), bit for bit what rmsNorm writes. */
  readonly normOut?: GPUBuffer;
  /** x rows hold [gate ‖ up] (K each): y = (silu(gate) · up)·Wᵀ. */
  readonly silu?: boolean;
  /** One or two outputs, their weights of one dtype; the second writes the first's buffer (at its own stride and offset) or its own. */
  readonly outputs: readonly [FusedGemvOutput] | readonly [FusedGemvOutput, FusedGemvOutput];
  /** y += instead of y = (every output). */
  readonly accumulate?: boolean;
  /**
   * Then adds the MoE combine: y += Σ_j weights[m, j]·slotOut[m·topK + j] (slotOut [M·topK, N], weights [M, topK]),
   * as moeCombine would after this GEMV. One accumulated output only.
   */
  readonly combine?: { readonly slotOut: GPUBuffer; readonly weights: GPUBuffer; readonly topK: number };
}

/** The fused GEMV, or null where it does not apply (run the unfused dispatches instead). */
export function fusedGemv(a: FusedGemvArgs, limits?: MatmulLimits): KernelProgram | null {
  const { M, K, outputs } = a;
  const [o1, o2] = outputs;
  if (!Number.isInteger(M) || M < 1 || M > Math.min(FUSED_GEMV_MAX_M, GEMV_MAX_M, GEMV_LIMIT_M)) return null;
  if (a.norm && a.silu) throw new RangeError('fusedGemv: norm and silu exclude each other');
  const dtype = o1.weight.dtype;
  if (outputs.some((o) => o.weight.dtype !== dtype)) return null;
  for (const o of outputs) {
    const sh = o.weight.shape;
    if (sh.length !== 2 || sh[0] !== o.N || sh[1] !== K) throw new RangeError(`fusedGemv: weight [${sh}] is not [${o.N}, ${K}]`);
    const yStride = o.yStride ?? o.N, yOffset = o.yOffset ?? 0;
    if (yStride < o.N || (yOffset + (M - 1) * yStride + o.N) * 4 > o.y.size) throw new RangeError('fusedGemv: an output buffer is smaller than M rows need');
    if (weightBytes(dtype, o.N * K) > o.weight.buffer.size) throw new RangeError('fusedGemv: a weight buffer is smaller than N·K');
  }
  if (a.norm && (a.norm.weight.shape.length !== 1 || a.norm.weight.shape[0] !== K)) {
    throw new RangeError(`fusedGemv: norm weight [${a.norm.weight.shape}] is not [${K}]`);
  }
  const xStride = a.xStride ?? (a.silu ? 2 * K : K), xOffset = a.xOffset ?? 0;
  if (xStride < (a.silu ? 2 * K : K) || (xOffset + (M - 1) * xStride + (a.silu ? 2 * K : K)) * 4 > a.x.size) {
    throw new RangeError('fusedGemv: x buffer is smaller than M rows need');
  }
  if (outputs.some((o) => o.y === a.x)) throw new RangeError('fusedGemv: x and y must be different buffers');
  if (a.normOut) {
    if (!a.norm) throw new RangeError('fusedGemv: normOut needs norm');
    if (a.normOut === a.x || outputs.some((o) => o.y === a.normOut)) throw new RangeError('fusedGemv: normOut must be a buffer of its own');
    if (a.normOut.size < M * K * 4) throw new RangeError('fusedGemv: normOut is smaller than M rows need');
  }
  const c = a.combine;
  if (c) {
    if (o2 || !a.accumulate) throw new RangeError('fusedGemv: the combine takes one accumulated output');
    if (!Number.isInteger(c.topK) || c.topK < 1) throw new RangeError(`fusedGemv: combine topK ${c.topK}`);
    if (c.slotOut.size < M * c.topK * o1.N * 4 || c.weights.size < M * c.topK * 4) throw new RangeError('fusedGemv: combine buffers are smaller than M rows need');
    if ((o1.yStride ?? o1.N) !== o1.N || (o1.yOffset ?? 0) !== 0) throw new RangeError('fusedGemv: the combine needs a dense output');
  }
  const fuse: GemvFuse = {
    ...(a.norm ? { norm: a.norm.weight.dtype } : {}),
    ...(a.normOut ? { normOut: true } : {}),
    ...(o2 ? { second: o2.y === o1.y ? 'same' as const : 'other' as const } : {}),
    ...(a.silu ? { silu: true } : {}),
    ...(c ? { combine: c.topK } : {}),
  };
  const wgBytes = limits?.maxComputeWorkgroupStorageSize ?? 16384;
  const invocations = limits?.maxComputeInvocationsPerWorkgroup ?? 256;
  const perDim = limits?.maxComputeWorkgroupsPerDimension ?? 65535;
  const N = outputs.reduce((n, o) => n + o.N, 0);
  const config = gemvConfig(M, N, invocations, wgBytes);
  if (gemvWorkgroupBytes(config) + gemvFuseBytes(config, fuse) > wgBytes || config.T * config.RG > invocations) return null;
  const align: MatmulAlign = { vecX: K % 4 === 0 && xStride % 4 === 0 && xOffset % 4 === 0, vecW: K % weightsPerVec(dtype) === 0 };
  const rows = gemvRowsPerWorkgroup(config);
  // the second output's workgroups follow the first's
  const blocks1 = Math.ceil(o1.N / rows);
  const blocks = blocks1 + (o2 ? Math.ceil(o2.N / rows) : 0);
  const gx = Math.min(blocks, perDim);
  // the normed / activated rows staged once per workgroup where they fit beside the GEMV's own workgroup memory
  const stage = gemvStageVec4s(config, K);
  const stageX = (a.norm || a.silu) && (limits?.gemvStageInput ?? true)
    && gemvWorkgroupBytes(config) + gemvFuseBytes(config, fuse) + stage * 16 <= wgBytes ? stage : undefined;
  const shader = gemvShader({
    dtype, align, config, accumulate: a.accumulate ?? false, fuse, ...(stageX ? { stageX } : {}),
    ...(gemvSubgroupReduce(config.T, limits?.subgroupSize) ? { subgroupReduce: true } : {}),
  });
  if (shader.bindings!.length > (limits?.maxStorageBuffersPerShaderStage ?? 8)) return null;
  return {
    shader,
    buffers: shaderBuffers(shader, {
      x: a.x, w: o1.weight.buffer, y: o1.y, gw: a.norm?.weight.buffer, w2: o2?.weight.buffer, y2: o2 && o2.y !== o1.y ? o2.y : undefined,
      xn: a.normOut, slot_out: c?.slotOut, slot_w: c?.weights,
    }),
    uniformValues: {
      M, N: o1.N, K, x_stride: xStride, x_offset: xOffset, y_stride: o1.yStride ?? o1.N, y_offset: o1.yOffset ?? 0, w_offset: 0,
      eps: a.norm?.eps ?? 0, N2: o2?.N ?? 0, y2_stride: o2?.yStride ?? o2?.N ?? 0, y2_offset: o2?.yOffset ?? 0, w2_offset: 0, blocks1,
    },
    workgroups: [gx, Math.ceil(blocks / gx)],
  };
}
