// Weight absorption (DeepSeek-V2 §2.1.2, SGLang's MLA decode): kv_b_proj maps the normalized latent c to each
// head's k_nope and v, rows [h·(nope+v), h·(nope+v)+nope) and [.. +nope, .. +nope+v) of a [heads·(nope+v), r]
// weight. Decoding never expands the latent: the query is moved into the latent space instead
// (q_lat = W_UKᵀ·q_nope, r values a head) and the attention output comes back through W_UV (o = W_UV·ō).
//   W_UK: read in place from kv_b_proj, whose rows are already [nope, r] per head, coalesced along r.
//   W_UV: a transposed copy [heads, r, v] made once here, so o's matmul reads rows contiguous along v.
// Both stay in the checkpoint's 16-bit dtype (the copy only moves values).
import type { Gpu } from '@latentwire/gpu';
import type { GpuTensor } from '@latentwire/gpu/kernels';
import type { MlaConfig } from '@latentwire/model';
import type { ModelWeights } from '@latentwire/gpu/weights';
import { headTranspose, headTransposeBytes } from '../kernels/head-transpose/index.js';
import type { HeadMatmulArgs } from '../kernels/head-matmul/index.js';

/** A per-head [K, N] weight inside a buffer, as headMatmul reads it. */
export interface HeadWeight {
  readonly tensor: GpuTensor;
  readonly offset: number;
  readonly headStride: number;
  readonly rowStride: number;
}

export interface AbsorbedLayer {
  /** [heads][nope, r]: q_lat = q_nope · W_UK. */
  readonly wUk: HeadWeight;
  /** [heads][r, v]: o = ō · W_UVᵀ. */
  readonly wUvT: HeadWeight;
}

export interface AbsorbedWeights {
  readonly layers: readonly AbsorbedLayer[];
  readonly bytes: number;
  release(): void;
}

export async function prepareAbsorbedWeights(gpu: Gpu, cfg: MlaConfig, weights: ModelWeights): Promise<AbsorbedWeights> {
  const heads = cfg.numHeads, nope = cfg.qkNopeHeadDim, v = cfg.vHeadDim, r = cfg.kvLoraRank;
  const buffers: GPUBuffer[] = [];
  const layers = weights.layers.map((lw, l): AbsorbedLayer => {
    const kvb = lw.kvBProj;
    const dst = gpu.buffer(`w_uv_t.${l}`, headTransposeBytes(kvb.dtype, heads, v, r));
    buffers.push(dst);
    return {
      wUk: { tensor: kvb, offset: 0, headStride: (nope + v) * r, rowStride: r },
      wUvT: { tensor: { buffer: dst, dtype: kvb.dtype, shape: [heads * r, v] }, offset: 0, headStride: r * v, rowStride: v },
    };
  });
  await gpu.run(weights.layers.map((lw, l) =>
    headTranspose({ src: lw.kvBProj, dst: layers[l]!.wUvT.tensor.buffer, heads, rows: v, cols: r, headRowStride: nope + v, rowOffset: nope })));
  return {
    layers,
    bytes: buffers.reduce((s, b) => s + b.size, 0),
    release: () => gpu.destroy(...buffers),
  };
}

/** headMatmul's weight arguments for a HeadWeight. */
export function headWeightArgs(w: HeadWeight): Pick<HeadMatmulArgs, 'weight' | 'wOffset' | 'wHeadStride' | 'wRowStride'> {
  return { weight: w.tensor, wOffset: w.offset, wHeadStride: w.headStride, wRowStride: w.rowStride };
}
