// The decode benches' synthetic steps: B sequences at the same context, each owning a contiguous run of pages
// (the cache holds zeros, a finite valid row in every dtype, so the work per token is as with real data),
// greedy sampling seeded per sequence.
import type { DecodeStepInput } from '@latentwire/decode-node';

/** Step i of B sequences at context `ctx`, `perSeq` pages each, over a vocabulary of `vocab` tokens. */
export function syntheticSteps(B: number, ctx: number, perSeq: number, vocab: number): (i: number) => DecodeStepInput {
  const tables = Array.from({ length: B }, (_, b) => Array.from({ length: perSeq }, (_, i) => b * perSeq + i));
  return (i: number) => ({
    tokens: Array.from({ length: B }, (_, b) => (b * 7919 + i) % vocab),
    positions: Array.from({ length: B }, () => ctx + i),
    pageTables: tables,
    sampling: Array.from({ length: B }, (_, b) => ({ temperature: 0, topK: 0, topP: 1, seed: b, counter: i })),
  });
}
