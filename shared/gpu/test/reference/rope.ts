// Rotary position embedding of the reference: frequencies (plain or YaRN), the cos/sin multiplier, the softmax
// scale correction, and the rotation itself in DeepSeek's interleaved-pair (complex-number) form.
import { qkHeadDim, type MlaConfig } from '@latentwire/model';
import { roundToBf16 } from '@latentwire/testing';

export interface RopeOptions {
  /**
   * Round the inverse frequencies to bf16, as transformers does when it loads a bf16 checkpoint: the model is
   * cast to bf16, the non-persistent `inv_freq` buffer included, and upcasting it later cannot restore the
   * lost bits. The tiny-deepseek-v2 fixture's reference.json was made that way (its logits differ from the
   * exact-frequency model by ~1e-3). Off by default: the exact model (DeepSeek's code, vLLM) keeps float32.
   */
  readonly bf16InvFreq?: boolean;
}

/** YaRN magnitude correction: 0.1·mscale·ln(scale) + 1, or 1 when there is no extension (scale ≤ 1). */
export function yarnGetMscale(scale: number, mscale = 1): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

/**
 * Inverse frequencies, one per rotated pair: qk_rope_head_dim / 2 values. Default RoPE is base^(-2i/dim). YaRN
 * (transformers `_compute_yarn_parameters`, same as DeepSeek's `DeepseekV2YarnRotaryEmbedding`) blends the
 * interpolated frequency (÷ factor) into the extrapolated one with a linear ramp over pair index i between the
 * correction dims of beta_fast and beta_slow rotations within original_max_position_embeddings, floored/ceiled
 * (transformers' `truncate`, default true) and clamped to [0, dim-1]; ramp 0 keeps the original frequency.
 */
export function ropeInvFreq(cfg: MlaConfig, options: RopeOptions = {}): Float64Array {
  const exact = exactInvFreq(cfg);
  return options.bf16InvFreq ? exact.map(roundToBf16) : exact;
}

function exactInvFreq(cfg: MlaConfig): Float64Array {
  const dim = cfg.qkRopeHeadDim;
  const base = cfg.ropeTheta;
  const extrapolated = new Float64Array(dim / 2).map((_, i) => 1 / base ** ((2 * i) / dim));
  const scaling = cfg.ropeScaling;
  if (scaling.kind === 'default') return extrapolated;

  const correctionDim = (rotations: number) =>
    (dim * Math.log(scaling.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
  const low = Math.max(Math.floor(correctionDim(scaling.betaFast)), 0);
  let high = Math.min(Math.ceil(correctionDim(scaling.betaSlow)), dim - 1);
  if (low === high) high += 0.001; // transformers' guard against a zero-width ramp
  return extrapolated.map((extra, i) => {
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    const interpolated = extra / scaling.factor;
    return interpolated * ramp + extra * (1 - ramp);
  });
}

/**
 * Multiplier folded into cos and sin (transformers' `attention_factor`, DeepSeek's `_mscale`). With both mscale
 * and mscale_all_dim set (all DeepSeek checkpoints) it is get_mscale(f, mscale) / get_mscale(f, mscale_all_dim),
 * which is exactly 1 when they are equal (V2, V2-Lite: 0.707/0.707; V3: 1.0/1.0). If either is 0/absent,
 * transformers uses get_mscale(f) with mscale 1.
 */
export function ropeAttentionFactor(cfg: MlaConfig): number {
  const s = cfg.ropeScaling;
  if (s.kind === 'default') return 1;
  if (s.mscale && s.mscaleAllDim) return yarnGetMscale(s.factor, s.mscale) / yarnGetMscale(s.factor, s.mscaleAllDim);
  return yarnGetMscale(s.factor);
}

/**
 * Softmax scale of attention scores: qk_head_dim^-0.5, times get_mscale(factor, mscale_all_dim)² under YaRN
 * when mscale_all_dim is set. This is applied to the whole score (nope and rope parts), on top of the cos/sin
 * factor. DeepSeek's own code and transformers' V3 apply it; transformers' V2 missed it until PR #47435.
 */
export function softmaxScale(cfg: MlaConfig): number {
  let scale = qkHeadDim(cfg) ** -0.5;
  const s = cfg.ropeScaling;
  if (s.kind === 'yarn' && s.mscaleAllDim) scale *= yarnGetMscale(s.factor, s.mscaleAllDim) ** 2;
  return scale;
}

/** cos and sin (already times attentionFactor) per position and pair: each [positions.length × invFreq.length]. */
export function ropeTable(
  positions: readonly number[],
  invFreq: Float64Array,
  attentionFactor: number,
): { cos: Float64Array; sin: Float64Array } {
  const half = invFreq.length;
  const cos = new Float64Array(positions.length * half);
  const sin = new Float64Array(positions.length * half);
  positions.forEach((p, t) => {
    for (let i = 0; i < half; i++) {
      cos[t * half + i] = Math.cos(p * invFreq[i]!) * attentionFactor;
      sin[t * half + i] = Math.sin(p * invFreq[i]!) * attentionFactor;
    }
  });
  return { cos, sin };
}

/**
 * Rotates every headDim-wide vector of `x`. x holds positions.length rows, each of one or more vectors (e.g.
 * all heads of a token). Dims (2i, 2i+1) form the complex number a + ib, multiplied by
 * attentionFactor·e^{i·pos·invFreq[i]}; the output keeps that interleaved layout.
 * transformers' V2 does exactly this (`apply_rotary_emb`, torch.view_as_complex). Its V3 (`rope_interleave`)
 * computes the same rotation but writes real parts in the first half and imaginary parts in the second;
 * that permutes q_pe and k_pe alike, so q·k (and the model's output) is unchanged.
 */
export function applyRope(
  x: Float64Array,
  positions: readonly number[],
  headDim: number,
  invFreq: Float64Array,
  attentionFactor: number,
): Float64Array {
  if (invFreq.length * 2 !== headDim) throw new RangeError(`applyRope: ${invFreq.length} frequencies for headDim ${headDim}`);
  const rowWidth = x.length / positions.length;
  if (!Number.isInteger(rowWidth) || rowWidth % headDim !== 0) {
    throw new RangeError(`applyRope: length ${x.length} is not ${positions.length} rows of whole ${headDim}-vectors`);
  }
  const { cos, sin } = ropeTable(positions, invFreq, attentionFactor);
  const half = headDim / 2;
  const out = new Float64Array(x.length);
  for (let t = 0; t < positions.length; t++) {
    for (let v = t * rowWidth; v < (t + 1) * rowWidth; v += headDim) {
      for (let i = 0; i < half; i++) {
        const re = x[v + 2 * i]!;
        const im = x[v + 2 * i + 1]!;
        const c = cos[t * half + i]!;
        const s = sin[t * half + i]!;
        out[v + 2 * i] = re * c - im * s;
        out[v + 2 * i + 1] = re * s + im * c;
      }
    }
  }
  return out;
}
