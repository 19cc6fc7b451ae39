// Picks the next token from one row of logits: greedy, or temperature → top-k → top-p with a seeded PRNG.
// Used by the CLI's prefill-only generation; the decode engine samples on the GPU instead.
import type { SamplingParams } from './sampling-params.js';

export function makeRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
