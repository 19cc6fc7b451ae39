// Token sampling in float64 by sorting: the spec the GPU sampler (src/kernels/sample) is checked against. It
// shares no code with the kernel; the logit sanitizing and the f32 rounding of temperature / top_p are part of
// the semantics, written out again here.

/** The fields of SamplingParams that decide the distribution (seed and counter only pick u). */
export interface SamplingKnobs {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
}

const LOGIT_LIMIT = 2 ** 126;

/** NaN -> -2^126, clamped to ±2^126 (what the sampler reads). */
export function sanitizeLogit(x: number): number {
  if (Number.isNaN(x)) return -LOGIT_LIMIT;
  return Math.min(LOGIT_LIMIT, Math.max(-LOGIT_LIMIT, Math.fround(x)));
}

export interface SamplingDistribution {
  /** Probability of each token (0 outside the kept set). */
  readonly probs: Float64Array;
  /** Kept tokens in index order. */
  readonly kept: readonly number[];
  /**
   * How far top_p is from a point where the kept set would change: min over distinct logit values of
   * |mass(logit >= v) / topKMass − top_p|; Infinity when top-p is off. Tests pick top_p with a margin that f32
   * sums cannot cross.
   */
  readonly topPMargin: number;
}

export function samplingDistribution(logits: ArrayLike<number>, knobs: SamplingKnobs): SamplingDistribution {
  const x = Array.from(logits, sanitizeLogit);
  const V = x.length;
  const T = Math.fround(knobs.temperature);
  const probs = new Float64Array(V);
  if (T === 0) {
    let best = 0;
    for (let i = 1; i < V; i++) if (x[i]! > x[best]!) best = i;
    probs[best] = 1;
    return { probs, kept: [best], topPMargin: Infinity };
  }
  const t = Math.min(1e30, Math.max(1e-30, T));
  const desc = [...x].sort((a, b) => b - a);
  const max = desc[0]!;
  const w = x.map((v) => Math.exp((v - max) / t));
  // top-k: the k-th largest value, ties kept
  let threshold = knobs.topK > 0 && knobs.topK < V ? desc[knobs.topK - 1]! : -Infinity;
  // top-p over the top-k set: walk the distinct values downwards until the mass reaches p
  const p = Math.fround(knobs.topP);
  let topPMargin = Infinity;
  if (p < 1) {
    const massOf = new Map<number, number>();
    x.forEach((v, i) => { if (v >= threshold) massOf.set(v, (massOf.get(v) ?? 0) + w[i]!); });
    const values = [...massOf.keys()].sort((a, b) => b - a);
    const total = values.reduce((s, v) => s + massOf.get(v)!, 0);
    let cum = 0;
    let tau: number | null = null;
    for (const v of values) {
      cum += massOf.get(v)!;
      topPMargin = Math.min(topPMargin, Math.abs(cum / total - p));
      if (tau === null && cum >= p * total) tau = v;
    }
    threshold = Math.max(threshold, tau ?? values.at(-1)!);
  }
  const kept: number[] = [];
  let sum = 0;
  x.forEach((v, i) => { if (v >= threshold) { kept.push(i); sum += w[i]!; } });
  for (const i of kept) probs[i] = w[i]! / sum;
  return { probs, kept, topPMargin };
}

/**
 * Inverse CDF in token order: the first token whose cumulative probability exceeds u. `boundary` is the
 * distance from u to the nearest cumulative probability (a draw closer than f32 rounding may legitimately differ).
 */
export function inverseCdfToken(probs: ArrayLike<number>, u: number): { token: number; boundary: number } {
  let cum = 0;
  let token = -1;
  let boundary = Infinity;
  for (let i = 0; i < probs.length; i++) {
    if (probs[i] === 0) continue;
    cum += probs[i]!;
    boundary = Math.min(boundary, Math.abs(cum - u));
    if (token < 0 && cum > u) token = i;
  }
  if (token < 0) for (let i = probs.length - 1; i >= 0 && token < 0; i--) if (probs[i]! > 0) token = i;
  return { token, boundary };
}
