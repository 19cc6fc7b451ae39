// The activations one forward pass runs over, for up to `rows` tokens (prefill: the prompt's tokens; decode:
// one token per sequence of the batch). Only the attention block's own buffers are left to the caller.
import type { BufferSource } from '../runtime/buffer-pool.js';
import { qkHeadDim, type MlaConfig } from '@latentwire/model';
import { allocMoeScratch, moeScratchBytesFor, type MoeScratchBuffers } from './mlp-programs.js';
import { GEMV_MMA_MAX_M } from '../kernels/matmul/matmul.js';

/**
 * Split-K partial sums (MatmulArgs.splitK), for passes of GEMM-sized batches: the launcher fits its splits in it
 * (8 MiB: V2-Lite's widest decode GEMM, 64 × 5632, 5 splits; 64 × 2048, 16).
 */
export const SPLIT_K_SCRATCH_BYTES = 8 << 20;

export interface ForwardScratch {
  /** Most rows these buffers hold. */
  readonly rows: number;
  /**
   * Most rows the MLP scratch (gateUp, gated, moe) holds: a pass over more rows runs its MLPs in chunks of this
   * many (the MLP is per token), so a long prompt's MLP scratch stays within one binding.
   */
  readonly mlpRows: number;
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
  /** MLP scratch: gate ‖ up [mlpRows, 2·inter] and the gated product [mlpRows, inter], for the widest MLP. */
  readonly gateUp: GPUBuffer;
  readonly gated: GPUBuffer;
  /** Router and expert scratch (MoE models). */
  readonly moe: MoeScratchBuffers | null;
  /** Split-K partial sums (null where rows stay in the GEMV range, which never splits). */
  readonly splitK: GPUBuffer | null;
  release(): void;
}

/** The widest SiLU-gated MLP's intermediate size: dense layers, or the shared experts fused into one MLP. */
function widestMlp(cfg: MlaConfig): number {
  return Math.max(cfg.intermediateSize, (cfg.moe?.moeIntermediateSize ?? 0) * (cfg.moe?.nSharedExperts ?? 0));
}

/** Most rows one dispatch of the MLP's row-per-workgroup kernels (silu·mul, the router, the experts' row tiles) takes. */
const MLP_MAX_ROWS = 65535;

/**
 * The most rows an MLP chunk may have on a device binding at most `maxBindingBytes`: each of its scratch buffers
 * (moeScratchBytes, gate ‖ up, gated) within one binding and its rows within one dispatch dimension. Passes over
 * more rows run their MLPs in chunks (ModelForward.layer): at V2-Lite shapes and 2 GiB bindings, 24,528 rows,
 * where the dense layer's gate ‖ up reaches 2 GiB.
 */
export function mlpChunkRows(cfg: MlaConfig, maxBindingBytes: number): number {
  const inter = widestMlp(cfg);
  const fits = (n: number) => n * 2 * inter * 4 <= maxBindingBytes
    && (!cfg.moe || Object.values(moeScratchBytesFor(cfg, n)).every((bytes) => bytes <= maxBindingBytes));
  let lo = 1, hi = MLP_MAX_ROWS;
  if (fits(hi)) return hi;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (fits(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/**
 * Allocates the scratch of a forward pass over up to `rows` tokens from `gpu` (the runtime, or a BufferPool the
 * release gives them back to), its MLP scratch for up to `mlpRows` of them; `label` prefixes buffer labels.
 */
export function allocForwardScratch(gpu: BufferSource, cfg: MlaConfig, rows: number, label = '', mlpRows = rows): ForwardScratch {
  const H = cfg.hiddenSize, heads = cfg.numHeads;
  const maxInter = widestMlp(cfg);
  const mlp = Math.min(rows, mlpRows);
  const b = {
    x: gpu.buffer(`${label}x`, rows * H * 4),
    xn: gpu.buffer(`${label}xn`, rows * H * 4),
    q: gpu.buffer(`${label}q`, rows * heads * qkHeadDim(cfg) * 4),
    qa: cfg.qLoraRank === null ? null : gpu.buffer(`${label}q_a`, rows * cfg.qLoraRank * 4),
    attn: gpu.buffer(`${label}attn_out`, rows * heads * cfg.vHeadDim * 4),
    gateUp: gpu.buffer(`${label}mlp.gate_up`, mlp * 2 * maxInter * 4),
    gated: gpu.buffer(`${label}mlp.gated`, mlp * maxInter * 4),
    // the GEMMs from GEMV_MMA_MAX_M + 1 rows on tensor-core devices (GEMV_MAX_M + 1 elsewhere) may split K
    splitK: rows > GEMV_MMA_MAX_M ? gpu.buffer(`${label}split_k`, SPLIT_K_SCRATCH_BYTES) : null,
  };
  const moe = cfg.moe ? allocMoeScratch(gpu, cfg, mlp) : null;
  return {
    rows, mlpRows: mlp, ...b, moe,
    release: () => {
      gpu.destroy(b.x, b.xn, b.q, b.qa, b.attn, b.gateUp, b.gated, b.splitK);
      moe?.release();
    },
  };
}
