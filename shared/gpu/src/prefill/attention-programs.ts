// Naive-order MLA attention over the prompt, the prefill's attention block: kv_b_proj expands each latent row
// into per-head [k_nope, v], and the flash-style prefill kernel attends causally with q (roped in place) and
// the latent rows' shared roped k_pe. Each layer's latent rows go to their own buffer: the prefill's KV output.
import type { KernelProgram } from '../runtime/program.js';
import type { AttentionBlock, ForwardPass, ModelForward } from '../forward/model-forward.js';
import { latentRowWidth } from '@latentwire/model';
import { matmul } from '../kernels/matmul/matmul.js';
import { mlaPrefillAttention } from '../kernels/mla-prefill-attention/mla-prefill-attention.js';

export interface NaiveAttentionBuffers {
  /** Per layer: f32 [tokens, r + rope], written by the forward. */
  readonly latent: readonly GPUBuffer[];
  /** Scratch [tokens, heads·(nope + v)] for the expanded keys and values. */
  readonly kv: GPUBuffer;
}

export function naiveAttention(f: ModelForward, b: NaiveAttentionBuffers): AttentionBlock {
  const cfg = f.cfg;
  return {
    latent: (l) => b.latent[l]!,
    *programs(l: number, pass: ForwardPass, latent: GPUBuffer): Generator<KernelProgram> {
      const T = pass.rows, lim = f.gpu.limits, s = pass.scratch;
      yield f.ropeQuery(pass);
      yield matmul({
        x: latent, xStride: latentRowWidth(cfg), weight: f.weights.layers[l]!.kvBProj, y: b.kv,
        M: T, N: cfg.numHeads * (cfg.qkNopeHeadDim + cfg.vHeadDim), K: cfg.kvLoraRank,
      }, f.gpu.matmulLimits);
      yield mlaPrefillAttention({
        q: s.q, kv: b.kv, latent, out: s.attn,
        heads: cfg.numHeads, nope: cfg.qkNopeHeadDim, rope: cfg.qkRopeHeadDim, v: cfg.vHeadDim, kvLoraRank: cfg.kvLoraRank,
        qLen: T, qPos0: 0, kvLen: T, scale: f.softmaxScale, limits: lim, subgroupMatrix: f.gpu.matmulLimits.subgroupMatrix, // a whole prompt from position 0: its rows are all the KV
        mmaRows: f.gpu.prefillAttentionRows,
      });
    },
  };
}
