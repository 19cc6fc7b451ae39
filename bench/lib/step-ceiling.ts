// The serving bench's decode ceiling: the same engine's DecodeModel stepping alone, with nothing else on the
// device or the event loop, at a given batch and context. Run it while the engine is idle (all pages free):
// the steps write one KV row per sequence into pages nobody holds.
import type { DecodeStack } from '@latentwire/decode-node';

/** decode-node's DecodeModel, as its public entry exposes it. */
type DecodeModel = DecodeStack['model'];

export interface StepCeiling {
  readonly batch: number;
  readonly context: number;
  readonly stepMs: number;
  readonly tokensPerS: number;
}

export async function measureStepCeiling(model: DecodeModel, batch: number, context: number, iters: number): Promise<StepCeiling> {
  const { pageSize, numPages } = model.opts;
  const ctx = Math.min(context, model.opts.maxContext - 1);
  const perSeq = Math.ceil((ctx + 1) / pageSize);
  // distinct pages per sequence while the pool lasts, then wrapped (the work per step is the same)
  const tables = Array.from({ length: batch }, (_, b) => Array.from({ length: perSeq }, (_, i) => (b * perSeq + i) % numPages));
  const input = (i: number) => ({
    tokens: Array.from({ length: batch }, (_, b) => (b * 7919 + i) % model.cfg.vocabSize),
    positions: Array.from({ length: batch }, () => ctx),
    pageTables: tables,
    sampling: Array.from({ length: batch }, (_, b) => ({ temperature: 0, topK: 0, topP: 1, seed: b, counter: i })),
  });
  await model.step(input(0)); // pipelines for this batch shape
  const t0 = performance.now();
  for (let i = 1; i <= iters; i++) await model.step(input(i));
  const stepMs = (performance.now() - t0) / iters;
  return { batch, context: ctx, stepMs, tokensPerS: (batch * 1e3) / stepMs };
}
