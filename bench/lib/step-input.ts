// The decode benches' synthetic steps: B sequences at the same context, each owning a contiguous run of pages
// (the cache holds zeros, a finite valid row in every dtype, so the work per token is as with real data),
// sampling seeded per sequence: greedy, or one of the usual sampled settings.
import type { DecodeStepInput } from '@latentwire/decode-node';

/** The decode benches' sampling settings (BENCH_SAMPLING). */
export const BENCH_SAMPLINGS = {
  greedy: { temperature: 0, topK: 0, topP: 1 },
  'top-p': { temperature: 0.7, topK: 0, topP: 0.9 },
  'top-k-p': { temperature: 0.7, topK: 50, topP: 0.9 },
} as const;
export type BenchSampling = keyof typeof BENCH_SAMPLINGS;

/** Step i of B sequences at context `ctx`, `perSeq` pages each, over a vocabulary of `vocab` tokens. */
export function syntheticSteps(B: number, ctx: number, perSeq: number, vocab: number, sampling: BenchSampling = 'greedy'): (i: number) => DecodeStepInput {
  const tables = Array.from({ length: B }, (_, b) => Array.from({ length: perSeq }, (_, i) => b * perSeq + i));
  return (i: number) => ({
    tokens: Array.from({ length: B }, (_, b) => (b * 7919 + i) % vocab),
    positions: Array.from({ length: B }, () => ctx + i),
    pageTables: tables,
    sampling: Array.from({ length: B }, (_, b) => ({ ...BENCH_SAMPLINGS[sampling], seed: b, counter: i })),
  });
}
