// Per-row sampling parameters: the typed form the engine fills, their validation, and the GPU layout the
// sampler reads (SAMPLING_PARAMS_WORDS u32 words per row, see sample.wgsl).

export interface SamplingParams {
  /** Softmax temperature; 0 = greedy (argmax). */
  readonly temperature: number;
  /** Keep tokens whose logit is >= the k-th largest (ties kept); 0 = off. */
  readonly topK: number;
  /** Nucleus mass in (0, 1]; 1 = off. */
  readonly topP: number;
  /** u32: the request's seed. */
  readonly seed: number;
  /** u32: the index of the token being sampled in the sequence's output, so a seed replays the same tokens. */
  readonly counter: number;
}

/** Words per row: temperature (f32 bits), top_k, top_p (f32 bits), seed, counter, 3 reserved (zero). */
export const SAMPLING_PARAMS_WORDS = 8;
export const SAMPLING_PARAMS_BYTES = SAMPLING_PARAMS_WORDS * 4;

const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

/** Throws a RangeError naming the field (and the row, when given) of the first out-of-range value. */
export function validateSamplingParams(p: SamplingParams, row?: number): void {
  const bad = (field: keyof SamplingParams, why: string) => {
    throw new RangeError(`sampling params${row === undefined ? '' : ` row ${row}`}: ${field} ${p[field]} ${why}`);
  };
  if (typeof p.temperature !== 'number' || !Number.isFinite(p.temperature) || p.temperature < 0) bad('temperature', 'must be finite and >= 0');
  if (!isU32(p.topK)) bad('topK', 'must be an integer in [0, 2^32)');
  if (typeof p.topP !== 'number' || !(p.topP > 0 && p.topP <= 1)) bad('topP', 'must be in (0, 1]');
  if (!isU32(p.seed)) bad('seed', 'must be a u32');
  if (!isU32(p.counter)) bad('counter', 'must be a u32');
}

/** Validates every row and packs them for upload (temperature and top_p become f32); never empty (GPU buffers can't be). */
export function packSamplingParams(rows: readonly SamplingParams[]): Uint32Array {
  const words = new Uint32Array(Math.max(1, rows.length) * SAMPLING_PARAMS_WORDS);
  const f32 = new Float32Array(words.buffer);
  rows.forEach((p, r) => {
    validateSamplingParams(p, r);
    const o = r * SAMPLING_PARAMS_WORDS;
    f32[o] = p.temperature;
    words[o + 1] = p.topK;
    f32[o + 2] = p.topP;
    words[o + 3] = p.seed;
    words[o + 4] = p.counter;
  });
  return words;
}
