// Weight-absorbed MLA over the paged latent cache, the decode step's attention block (one row per sequence):
//   1. absorbed query qAbs [b, h, r + rope]: q_lat = q_nope · W_UK (r values) and roped q_pe, one dispatch
//      (both per-head products on tensor cores from 16 rows where the attention runs on them)
//   2. the row's latent (kv_a_proj_with_mqa's output, from the shared forward) normed, roped and appended to the
//      cache at the token's position, in one dispatch (at batches up to 4, in the same dispatch as 1)
//   3. grouped decode attention over the sequence's pages: ō [b, h, r] in the latent space, or with KV splits
//      each split's partial ō and LSE
//   4. attn = ō · W_UVᵀ per head, the splits merged while the matmul stages ō (with mergeInMatmul off, by the
//      merge dispatch before it); o_proj follows in the shared forward
import type { AttentionBlock, ForwardPass, ModelForward } from '@latentwire/gpu/forward';
import type { KernelProgram } from '@latentwire/gpu';
import { kvAppend, type KvAppendArgs } from '@latentwire/gpu/kernels';
import { groupedDecodeAttention, type GroupedDecodeVariant } from '../kernels/grouped-decode-attention/index.js';
import { HEAD_MATMUL_APPEND_MAX_BATCH, headMatmul, type HeadMatmulArgs } from '../kernels/head-matmul/index.js';
import { headWeightArgs, type AbsorbedWeights } from './absorbed-weights.js';
import type { LatentKvCache } from './latent-kv-cache.js';

export interface AbsorbedAttentionArgs {
  readonly absorbed: AbsorbedWeights;
  readonly cache: LatentKvCache;
  readonly variant: GroupedDecodeVariant;
  /** Scratch: the step's latent rows [b, r + rope], qAbs [b, h, r + rope], ō [b, h, r] and the split LSEs. */
  readonly latent: GPUBuffer;
  readonly qAbs: GPUBuffer;
  readonly oLatent: GPUBuffer;
  readonly lse: GPUBuffer;
  /** Split-KV partial outputs (null for one split). */
  readonly partial: GPUBuffer | null;
  readonly numSplits: number;
  /** Per sequence: its length after this token, and where its page table starts in pageTable. */
  readonly seqLens: GPUBuffer;
  readonly tableOffsets: GPUBuffer;
  readonly pageTable: GPUBuffer;
  /** With splits: W_UV's product merges them while staging (no merge dispatch). */
  readonly mergeInMatmul: boolean;
}

export function absorbedAttention(f: ModelForward, a: AbsorbedAttentionArgs): AttentionBlock {
  const cfg = f.cfg;
  const heads = cfg.numHeads, r = cfg.kvLoraRank, nope = cfg.qkNopeHeadDim, qaStride = r + cfg.qkRopeHeadDim;
  const qkDim = nope + cfg.qkRopeHeadDim;
  return {
    latent: () => a.latent,
    finishesLatent: true,
    *programs(l: number, pass: ForwardPass, latent: GPUBuffer): Generator<KernelProgram> {
      const B = pass.rows, s = pass.scratch, w = a.absorbed.layers[l]!, pools = a.cache.pools[l]!;
      const subgroupSize = f.gpu.matmulLimits.subgroupSize;
      // q_lat = q_nope · W_UK and roped q_pe beside it, in one dispatch
      const absorbedQuery: HeadMatmulArgs = {
        x: s.q, xRowStride: heads * qkDim, xHeadStride: qkDim, ...headWeightArgs(w.wUk),
        y: a.qAbs, yRowStride: heads * qaStride, yHeadStride: qaStride, batch: B, heads, K: nope, N: r, engine: a.variant.engine, subgroupSize,
        rope: { positions: pass.positions, invFreq: f.invFreq, ropeDim: cfg.qkRopeHeadDim, inOffset: nope, outOffset: r, attentionFactor: f.ropeAttentionFactor },
      };
      const append: KvAppendArgs = {
        layout: a.cache.layout, src: latent, rows: B, positions: pass.positions, tableOffsets: a.tableOffsets, pageTable: a.pageTable,
        pools, pagesPerBuffer: a.cache.pagesPerBuffer, finish: f.latentFinish(l),
      };
      // at small batches the append runs in the absorbed query's dispatch, where the device binds that many buffers
      const both = B <= HEAD_MATMUL_APPEND_MAX_BATCH ? headMatmul({ ...absorbedQuery, append }) : null;
      if (both && both.shader.bindings!.length <= (f.gpu.matmulLimits.maxStorageBuffersPerShaderStage ?? 8)) yield both;
      else {
        yield headMatmul(absorbedQuery);
        yield kvAppend(append);
      }
      const mergeHere = a.numSplits > 1 && a.mergeInMatmul;
      yield* groupedDecodeAttention({
        variant: a.variant, q: a.qAbs, seqLens: a.seqLens, pageTableOffsets: a.tableOffsets, pageTable: a.pageTable, pools,
        pagesPerBuffer: a.cache.pagesPerBuffer, out: a.oLatent, lse: a.lse, partial: a.partial ?? undefined, batch: B, heads,
        numSplits: a.numSplits, scale: f.softmaxScale, callerMerges: a.mergeInMatmul,
      });
      yield headMatmul({
        ...(mergeHere ? { x: a.partial!, merge: { lse: a.lse, numSplits: a.numSplits } } : { x: a.oLatent }),
        ...headWeightArgs(w.wUvT), y: s.attn, batch: B, heads, K: r, N: cfg.vHeadDim, engine: a.variant.engine, subgroupSize,
      });
    },
  };
}
