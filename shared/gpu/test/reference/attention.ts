// Multi-head Latent Attention in the naive (uncompressed) order, exactly as transformers runs it: expand the
// latent into per-head keys and values, then ordinary causal softmax attention. The GPU's absorbed form
// (q·W_UK against the cached latent) must agree with this.
import type { MlaConfig } from '@latentwire/model';
import { linear, rmsNorm, softmax } from './basic-ops.js';
import { applyRope, ropeAttentionFactor, ropeInvFreq, softmaxScale, type RopeOptions } from './rope.js';
import type { AttentionWeights } from './weights.js';

/**
 * eps of q_a_layernorm and kv_a_layernorm. Both transformers and DeepSeek's code build these two norms with the
 * RMSNorm default (1e-6), not with config.rms_norm_eps (which only the per-layer and final norms use).
 */
export const LATENT_NORM_EPS = 1e-6;

export interface MlaAttentionResult {
  /** o_proj output, [T × hidden]. */
  readonly output: Float64Array;
  /** Per token: normalized latent c (kv_lora_rank) then roped k_pe (qk_rope_head_dim), [T × (kvLora + rope)]. */
  readonly latent: Float64Array;
}

/** Columns [from, from + width) of every row of a row-major matrix with `rowWidth` columns. */
function columns(m: Float64Array, rowWidth: number, from: number, width: number): Float64Array {
  const rows = m.length / rowWidth;
  const out = new Float64Array(rows * width);
  for (let r = 0; r < rows; r++) out.set(m.subarray(r * rowWidth + from, r * rowWidth + from + width), r * width);
  return out;
}

/**
 * Causal MLA over T tokens: token t attends to tokens 0..t of `x` (already input_layernorm'ed, [T × hidden]).
 * positions[t] is token t's RoPE position (0..T-1 for a whole-sequence forward).
 */
export function mlaAttentionNaive(
  cfg: MlaConfig,
  w: AttentionWeights,
  x: Float64Array,
  positions: readonly number[],
  options: RopeOptions = {},
): MlaAttentionResult {
  const T = positions.length;
  const { hiddenSize: hidden, numHeads: heads, qkNopeHeadDim: nope, qkRopeHeadDim: rope, vHeadDim: vDim } = cfg;
  const kvLora = cfg.kvLoraRank;
  const qkDim = nope + rope;
  const invFreq = ropeInvFreq(cfg, options);
  const ropeFactor = ropeAttentionFactor(cfg);

  // Queries: q_proj, or q_a_proj -> q_a_layernorm -> q_b_proj. Per head: [q_nope | q_pe].
  const q = w.qProj
    ? linear(x, w.qProj, hidden)
    : linear(rmsNorm(linear(x, w.qAProj!, hidden), w.qALayernorm!, LATENT_NORM_EPS), w.qBProj!, cfg.qLoraRank!);
  const qPe = applyRope(
    Float64Array.from({ length: T * heads * rope }, (_, i) => {
      const th = Math.floor(i / rope); // token·heads + head
      return q[th * qkDim + nope + (i % rope)]!;
    }),
    positions, rope, invFreq, ropeFactor,
  );

  // Latent: kv_a_proj_with_mqa -> [c | k_pe]; c is normalized, k_pe (one for all heads) is roped.
  const compressed = linear(x, w.kvAProjWithMqa, hidden);
  const c = rmsNorm(columns(compressed, kvLora + rope, 0, kvLora), w.kvALayernorm, LATENT_NORM_EPS);
  const kPe = applyRope(columns(compressed, kvLora + rope, kvLora, rope), positions, rope, invFreq, ropeFactor);
  // kv_b_proj expands c per head into [k_nope (W_UK·c) | v (W_UV·c)].
  const kv = linear(c, w.kvBProj, kvLora);
  const kvWidth = heads * (nope + vDim);

  const scale = softmaxScale(cfg);
  const attn = new Float64Array(T * heads * vDim);
  for (let h = 0; h < heads; h++) {
    for (let t = 0; t < T; t++) {
      const scores = new Float64Array(t + 1);
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let i = 0; i < nope; i++) dot += q[(t * heads + h) * qkDim + i]! * kv[s * kvWidth + h * (nope + vDim) + i]!;
        for (let i = 0; i < rope; i++) dot += qPe[(t * heads + h) * rope + i]! * kPe[s * rope + i]!;
        scores[s] = dot * scale;
      }
      const p = softmax(scores);
      for (let s = 0; s <= t; s++) {
        for (let i = 0; i < vDim; i++) {
          const o = (t * heads + h) * vDim + i;
          attn[o] = attn[o]! + p[s]! * kv[s * kvWidth + h * (nope + vDim) + nope + i]!;
        }
      }
    }
  }

  const latent = new Float64Array(T * (kvLora + rope));
  for (let t = 0; t < T; t++) {
    latent.set(c.subarray(t * kvLora, (t + 1) * kvLora), t * (kvLora + rope));
    latent.set(kPe.subarray(t * rope, (t + 1) * rope), t * (kvLora + rope) + kvLora);
  }
  return { output: linear(attn, w.oProj, heads * vDim), latent };
}
