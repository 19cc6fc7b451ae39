// Sampling parameters as users give them (OpenAI-style), validated once.
export interface SamplingParams {
  /** 0 = greedy. */
  readonly temperature: number;
  readonly topP: number;
  /** 0 = no top-k cut. */
  readonly topK: number;
  readonly seed: number;
}

export const GREEDY: SamplingParams = { temperature: 0, topP: 1, topK: 0, seed: 0 };

export function checkSamplingParams(p: SamplingParams): SamplingParams {
  if (!(p.temperature >= 0 && p.temperature <= 100)) throw new RangeError(`temperature ${p.temperature} must be in [0, 100]`);
  if (!(p.topP > 0 && p.topP <= 1)) throw new RangeError(`top_p ${p.topP} must be in (0, 1]`);
  if (!Number.isInteger(p.topK) || p.topK < 0) throw new RangeError(`top_k ${p.topK} must be a whole number >= 0`);
  if (!Number.isInteger(p.seed) || p.seed < 0 || p.seed > 0xffffffff) throw new RangeError(`seed ${p.seed} must be a u32`);
  return p;
}
