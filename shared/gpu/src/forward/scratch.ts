// The activations one forward pass runs over, for up to `rows` tokens (prefill: the prompt's tokens; decode:
// one token per sequence of the batch). Only the attention block's own buffers are left to the caller.
import type { BufferSource } from '../runtime/buffer-pool.js';
import { qkHeadDim, type MlaConfig } from '@latentwire/model';
import { allocMoeScratch, type MoeScratchBuffers } from './mlp-programs.js';
import { GEMV_MMA_MAX_M } from '../kernels/matmul/matmul.js';

/**
 * Split-K partial sums (MatmulArgs.splitK), for passes of GEMM-sized batches: the launcher fits its splits in it
 * (8 MiB: V2-Lite's widest decode GEMM, 64 × 5632, 5 splits; 64 × 2048, 16).
 */
export const SPLIT_K_SCRATCH_BYTES = 8 << 20;

export interface ForwardScratch {
  /** Most rows these buffers hold. */
  readonly rows: number;
  /** The residual stream [rows, H]. */
  readonly x: GPUBuffer;
  /** Its RMSNorm [rows, H]: each block's input, and the final norm's output. */
  readonly xn: GPUBuffer;
  /** The projected query [rows, heads·(nope + rope)]. */
  readonly q: GPUBuffer;
  /** q_a [rows, q_lora_rank] (null without a query LoRA). */
  readonly qa: GPUBuffer | null;
  /** The attention block's output before o_proj [rows, heads·v]. */
  readonly attn: GPUBuffer;
  /** MLP scratch: gate ‖ up [rows, 2·inter] and the gated product [rows, inter], for the widest MLP. */
  readonly gateUp: GPUBuffer;
  readonly gated: GPUBuffer;
  /** Router and expert scratch (MoE models). */
  readonly moe: MoeScratchBuffers | null;
  /** Split-K partial sums (null where rows stay in the GEMV range, which never splits). */
  readonly splitK: GPUBuffer | null;
  release(): void;
}

/**
 * Allocates the scratch of a forward pass over up to `rows` tokens from `gpu` (the runtime, or a BufferPool the
 * release gives them back to); `label` prefixes buffer labels.
 */
export function allocForwardScratch(gpu: BufferSource, cfg: MlaConfig, rows: number, label = ''): ForwardScratch {
  const H = cfg.hiddenSize, heads = cfg.numHeads;
  // widest SiLU-gated MLP: dense layers, or the shared experts fused into one MLP
  const maxInter = Math.max(cfg.intermediateSize, (cfg.moe?.moeIntermediateSize ?? 0) * (cfg.moe?.nSharedExperts ?? 0));
  const b = {
    x: gpu.buffer(`${label}x`, rows * H * 4),
    xn: gpu.buffer(`${label}xn`, rows * H * 4),
    q: gpu.buffer(`${label}q`, rows * heads * qkHeadDim(cfg) * 4),
    qa: cfg.qLoraRank === null ? null : gpu.buffer(`${label}q_a`, rows * cfg.qLoraRank * 4),
    attn: gpu.buffer(`${label}attn_out`, rows * heads * cfg.vHeadDim * 4),
    gateUp: gpu.buffer(`${label}mlp.gate_up`, rows * 2 * maxInter * 4),
    gated: gpu.buffer(`${label}mlp.gated`, rows * maxInter * 4),
    // the GEMMs from GEMV_MMA_MAX_M + 1 rows on tensor-core devices (GEMV_MAX_M + 1 elsewhere) may split K
    splitK: rows > GEMV_MMA_MAX_M ? gpu.buffer(`${label}split_k`, SPLIT_K_SCRATCH_BYTES) : null,
  };
  const moe = cfg.moe ? allocMoeScratch(gpu, cfg, rows) : null;
  return {
    rows, ...b, moe,
    release: () => {
      gpu.destroy(b.x, b.xn, b.q, b.qa, b.attn, b.gateUp, b.gated, b.splitK);
      moe?.release();
    },
  };
}
