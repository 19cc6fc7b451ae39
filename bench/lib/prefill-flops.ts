// The FLOPs of a whole prefill, for the prefill benches' TFLOP/s.
import type { MlaConfig } from '@latentwire/model';

/** Matmul + attention FLOPs of a prefill of T tokens (multiply-adds count 2). */
export function prefillFlops(cfg: MlaConfig, T: number): number {
  const H = cfg.hiddenSize, heads = cfg.numHeads, qk = cfg.qkNopeHeadDim + cfg.qkRopeHeadDim;
  let perToken = 0;
  for (let l = 0; l < cfg.numLayers; l++) {
    const q = cfg.qLoraRank === null ? heads * qk * H : cfg.qLoraRank * H + heads * qk * cfg.qLoraRank;
    const kv = (cfg.kvLoraRank + cfg.qkRopeHeadDim) * H + heads * (cfg.qkNopeHeadDim + cfg.vHeadDim) * cfg.kvLoraRank;
    const o = H * heads * cfg.vHeadDim;
    const moe = cfg.moe;
    const mlp = moe && l >= moe.firstKDenseReplace
      ? 3 * H * moe.moeIntermediateSize * (moe.numExpertsPerTok + moe.nSharedExperts) + moe.nRoutedExperts * H
      : 3 * H * cfg.intermediateSize;
    perToken += 2 * (q + kv + o + mlp);
  }
  // causal attention: per layer and head, Σ_t t·(qk + v) multiply-adds
  const attn = cfg.numLayers * heads * 2 * ((T * (T + 1)) / 2) * (qk + cfg.vHeadDim);
  return perToken * T + attn + 2 * H * cfg.vocabSize;
}
