// RoPE inverse frequencies and the two YaRN corrections (DeepSeek-V2 paper §2.1 / YaRN; transformers'
// `_compute_yarn_parameters`). Computed once at load; the kernels apply them.
import { qkHeadDim, type MlaConfig } from './mla-config.js';
import { bf16Bits } from './numbers/half.js';

/**
 * How the RoPE inverse frequencies are rounded: the one vocabulary of ROPE_FREQ_PRECISION, the prefill model
 * and the decode model. transformers keeps `inv_freq` as a module buffer, so loading a bf16 checkpoint rounds
 * it to bf16; 'checkpoint' reproduces that bit for bit (bf16 weights → bf16-rounded frequencies, others exact).
 * DeepSeek's training code and vLLM use exact float32 frequencies: 'f32'. The difference grows with position
 * (angle error ≈ pos·Δf), so a decode model must use its prefill model's value: both require it.
 */
export const ROPE_FREQ_PRECISIONS = ['checkpoint', 'f32'] as const;
export type RopeFreqPrecision = (typeof ROPE_FREQ_PRECISIONS)[number];
/** ROPE_FREQ_PRECISION's default, as transformers computes them. */
export const DEFAULT_ROPE_FREQ_PRECISION: RopeFreqPrecision = 'checkpoint';

/** The frequencies a model on weights of `checkpointDtype` uses under `precision` (prefill and decode alike). */
export function modelRopeInverseFrequencies(cfg: MlaConfig, precision: RopeFreqPrecision, checkpointDtype: string): Float32Array {
  return ropeInverseFrequencies(cfg, precision === 'checkpoint' && checkpointDtype === 'bf16' ? 'bf16' : 'f32');
}

function yarnMscale(factor: number, mscale = 1): number {
  return factor <= 1 ? 1 : 0.1 * mscale * Math.log(factor) + 1;
}

/** inv_freq per rotated pair, as f32 (transformers keeps it in float32), optionally rounded to bf16's precision. */
export function ropeInverseFrequencies(cfg: MlaConfig, roundTo: 'f32' | 'bf16' = 'f32'): Float32Array {
  const dim = cfg.qkRopeHeadDim;
  const base = cfg.ropeTheta;
  const out = new Float32Array(dim / 2);
  const s = cfg.ropeScaling;
  // YaRN: blend interpolated (÷factor) and extrapolated frequencies with a linear ramp between the dims whose
  // wavelengths make beta_fast and beta_slow rotations within the original context
  let low = 0, high = 0;
  if (s.kind === 'yarn') {
    const dimFor = (rotations: number) =>
      (dim * Math.log(s.originalMaxPositionEmbeddings / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
    low = Math.max(Math.floor(dimFor(s.betaFast)), 0);
    high = Math.min(Math.ceil(dimFor(s.betaSlow)), dim - 1);
    if (low === high) high += 0.001;
  }
  for (let i = 0; i < dim / 2; i++) {
    const extrapolated = 1 / Math.pow(base, (2 * i) / dim);
    if (s.kind !== 'yarn') {
      out[i] = extrapolated;
      continue;
    }
    const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
    out[i] = (extrapolated / s.factor) * ramp + extrapolated * (1 - ramp);
  }
  if (roundTo === 'bf16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < u.length; i++) u[i] = bf16Bits(u[i]!) << 16;
  }
  return out;
}

/** Multiplier of cos and sin: mscale(factor, mscale) / mscale(factor, mscale_all_dim) under YaRN. */
export function ropeAttentionFactor(cfg: MlaConfig): number {
  const s = cfg.ropeScaling;
  if (s.kind !== 'yarn') return 1;
  if (s.mscale && s.mscaleAllDim) return yarnMscale(s.factor, s.mscale) / yarnMscale(s.factor, s.mscaleAllDim);
  return yarnMscale(s.factor);
}

/** Softmax scale of attention scores: qk_head_dim^-0.5 · mscale(factor, mscale_all_dim)² under YaRN. */
export function attentionSoftmaxScale(cfg: MlaConfig): number {
  const s = cfg.ropeScaling;
  const m = s.kind === 'yarn' && s.mscaleAllDim ? yarnMscale(s.factor, s.mscaleAllDim) : 1;
  return (m * m) / Math.sqrt(qkHeadDim(cfg));
}
