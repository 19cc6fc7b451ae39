// Naive-order MLA attention over the prompt: the flash-style prefill kernel on q, kv_b_proj's expanded
// [k_nope, v] and the latent rows' shared roped k_pe.
import type { KernelProgram } from '../runtime/program.js';
import type { MlaConfig } from '@latentwire/model';
import { mlaPrefillAttention, type WorkgroupLimits } from '../kernels/mla-prefill-attention/mla-prefill-attention.js';

export interface AttentionBuffers {
  readonly q: GPUBuffer;
  readonly kv: GPUBuffer;
  readonly latent: GPUBuffer;
  readonly out: GPUBuffer;
  readonly tokens: number;
  readonly startPosition: number;
  readonly scale: number;
}

export function attentionPrograms(cfg: MlaConfig, b: AttentionBuffers, limits: WorkgroupLimits): KernelProgram[] {
  return [
    mlaPrefillAttention({
      q: b.q, kv: b.kv, latent: b.latent, out: b.out,
      heads: cfg.numHeads, nope: cfg.qkNopeHeadDim, rope: cfg.qkRopeHeadDim, v: cfg.vHeadDim, kvLoraRank: cfg.kvLoraRank,
      qLen: b.tokens, qPos0: b.startPosition, kvLen: b.startPosition + b.tokens, scale: b.scale, limits,
    }),
  ];
}
