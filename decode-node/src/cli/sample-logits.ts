// Picks the next token from one row of logits: greedy, or temperature → top-k → top-p with a seeded PRNG.
// Used by the CLI's prefill-only generation, until the decode engine (issue 3) samples on the GPU.
import type { SamplingParams } from './sampling-params.js';

export function sampleLogits(logits: Float32Array, p: SamplingParams, random: () => number): number {
  if (p.temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let ids = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]! || a - b);
  if (p.topK > 0) ids = ids.slice(0, p.topK);
  const max = logits[ids[0]!]!;
  const w = ids.map((i) => Math.exp((logits[i]! - max) / p.temperature));
  const total = w.reduce((a, b) => a + b, 0);
  let keep = ids.length;
  if (p.topP < 1) {
    let acc = 0;
    for (let j = 0; j < ids.length; j++) {
      acc += w[j]! / total;
      if (acc >= p.topP) { keep = j + 1; break; }
    }
  }
  const kept = w.slice(0, keep).reduce((a, b) => a + b, 0);
  let r = random() * kept;
  for (let j = 0; j < keep; j++) {
    r -= w[j]!;
    if (r <= 0) return ids[j]!;
  }
  return ids[keep - 1]!;
}
