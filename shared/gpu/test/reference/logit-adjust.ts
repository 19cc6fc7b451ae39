// Penalties, logit_bias and logprobs in float64: the spec the GPU kernels logit-adjust, count-tokens and
// token-logprobs (src/kernels/sample) are checked against. No code is shared with them.

export interface PenaltyKnobs {
  readonly presencePenalty: number;
  readonly frequencyPenalty: number;
  readonly repetitionPenalty: number;
  /** token id -> bias, added to the logit. */
  readonly logitBias: ReadonlyMap<number, number>;
}

/**
 * vLLM's order: logit_bias; then for tokens seen in prompt or output, x > 0 ? x / rep : x * rep; then
 * x -= frequency · count + presence · [count > 0], count = times generated so far.
 */
export function applyLogitAdjust(logits: ArrayLike<number>, k: PenaltyKnobs, prompt: readonly number[], output: readonly number[]): Float64Array {
  const x = Float64Array.from(logits);
  for (const [id, b] of k.logitBias) x[id] = x[id]! + b;
  const count = new Map<number, number>();
  for (const id of output) count.set(id, (count.get(id) ?? 0) + 1);
  const seen = new Set([...prompt, ...output]);
  for (const id of seen) {
    const v = x[id]!;
    x[id] = v > 0 ? v / k.repetitionPenalty : v * k.repetitionPenalty;
  }
  for (const [id, n] of count) x[id] = x[id]! - k.frequencyPenalty * n - k.presencePenalty;
  return x;
}

/** Float64 log-softmax. */
export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  let m = -Infinity;
  for (let i = 0; i < logits.length; i++) m = Math.max(m, logits[i]!);
  let s = 0;
  for (let i = 0; i < logits.length; i++) s += Math.exp(logits[i]! - m);
  const lse = m + Math.log(s);
  return Float64Array.from(logits, (v) => v - lse);
}

/** The k most probable ids, value descending, lower id first on ties. */
export function topIds(values: ArrayLike<number>, k: number): number[] {
  return Array.from({ length: values.length }, (_, i) => i)
    .sort((a, b) => values[b]! - values[a]! || a - b)
    .slice(0, k);
}
