// Greedy decoding by repeated full forwards: slow, but with no cache there is nothing to get wrong.
import type { MlaConfig } from '@latentwire/model';
import { argmax } from './basic-ops.js';
import { referenceForward, type ReferenceOptions } from './forward.js';
import type { WeightGetter } from './weights.js';

export interface GreedyResult {
  /** The generated tokens (prompt excluded). */
  readonly ids: number[];
  /** The logits that chose each generated token. */
  readonly stepLogits: Float64Array[];
}

/** `steps` greedy tokens after `prompt` (no EOS stop). */
export function referenceGreedy(
  cfg: MlaConfig,
  get: WeightGetter,
  prompt: readonly number[],
  steps: number,
  options: ReferenceOptions = {},
): GreedyResult {
  const seq = [...prompt];
  const ids: number[] = [];
  const stepLogits: Float64Array[] = [];
  for (let s = 0; s < steps; s++) {
    const logits = referenceForward(cfg, get, seq, options).logits.at(-1)!;
    const next = argmax(logits);
    stepLogits.push(logits);
    ids.push(next);
    seq.push(next);
  }
  return { ids, stepLogits };
}
