// Per-row settings of the kernels around the sampler: penalties and logit_bias (logit-adjust.wgsl), the
// token counts they read (count-tokens.wgsl keeps them), and logprobs (token-logprobs.wgsl). Their typed form,
// validation, and GPU layout: LOGIT_PARAMS_WORDS u32 words per row.
//
// The rule (vLLM's order; test/reference/sample.ts is the float64 spec), for each token i of a row:
//   x = logit_i + bias_i                                     (logit_bias, OpenAI: added to the logit)
//   if seen_i (in the prompt or the output so far): x = x > 0 ? x / repetition : x * repetition   (HF / vLLM)
//   x -= frequency · count_i + presence · (count_i > 0)       (OpenAI: count_i = times i was generated so far)
// Logprobs are log-softmax of the adjusted x, before temperature, top-k and top-p.

export interface LogitParams {
  /** OpenAI presence_penalty in [-2, 2]; 0 = off. */
  readonly presencePenalty: number;
  /** OpenAI frequency_penalty in [-2, 2]; 0 = off. */
  readonly frequencyPenalty: number;
  /** HF / vLLM repetition_penalty: finite and > 0; 1 = off. */
  readonly repetitionPenalty: number;
  /** Row of the counts buffer this sequence owns (NO_COUNTS: none; then no penalty may be set). */
  readonly countsRow: number;
  /** The row's logit_bias entries: [biasStart, biasStart + biasLength) of the bias buffer. */
  readonly biasStart: number;
  readonly biasLength: number;
  /** Top alternatives to report (0..MAX_TOP_LOGPROBS), or NO_LOGPROBS. */
  readonly topLogprobs: number;
}

export const LOGIT_PARAMS_WORDS = 8;
export const LOGIT_PARAMS_BYTES = LOGIT_PARAMS_WORDS * 4;
export const NO_COUNTS = 0xffffffff;
export const NO_LOGPROBS = 0xffffffff;
export const MAX_TOP_LOGPROBS = 20;
/** Words of one row's token-logprobs output: the sampled token's logprob, then MAX_TOP_LOGPROBS (id, logprob). */
export const LOGPROBS_WORDS = 1 + 2 * MAX_TOP_LOGPROBS;
/** Bit 31 of a counts word: the token occurs in the prompt; bits 0..30: times generated so far. */
export const PROMPT_BIT = 0x80000000;

export const NEUTRAL_LOGIT_PARAMS: LogitParams = {
  presencePenalty: 0, frequencyPenalty: 0, repetitionPenalty: 1, countsRow: NO_COUNTS, biasStart: 0, biasLength: 0, topLogprobs: NO_LOGPROBS,
};

/** Whether the row needs a counts row (any penalty set). */
export const needsCounts = (p: Pick<LogitParams, 'presencePenalty' | 'frequencyPenalty' | 'repetitionPenalty'>): boolean =>
  p.presencePenalty !== 0 || p.frequencyPenalty !== 0 || p.repetitionPenalty !== 1;

const isU32 = (v: number) => Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

export function validateLogitParams(p: LogitParams, row?: number): void {
  const bad = (field: keyof LogitParams, why: string) => {
    throw new RangeError(`logit params${row === undefined ? '' : ` row ${row}`}: ${field} ${p[field]} ${why}`);
  };
  for (const f of ['presencePenalty', 'frequencyPenalty'] as const) if (!Number.isFinite(p[f])) bad(f, 'must be finite');
  if (!(Number.isFinite(p.repetitionPenalty) && p.repetitionPenalty > 0)) bad('repetitionPenalty', 'must be finite and > 0');
  if (!isU32(p.countsRow)) bad('countsRow', 'must be a u32');
  if (needsCounts(p) && p.countsRow === NO_COUNTS) bad('countsRow', 'is NO_COUNTS but a penalty is set');
  if (!isU32(p.biasStart) || !isU32(p.biasLength)) bad('biasStart', 'and biasLength must be u32');
  if (!(p.topLogprobs === NO_LOGPROBS || (Number.isInteger(p.topLogprobs) && p.topLogprobs >= 0 && p.topLogprobs <= MAX_TOP_LOGPROBS))) {
    bad('topLogprobs', `must be in [0, ${MAX_TOP_LOGPROBS}] or NO_LOGPROBS`);
  }
}

/** Validates and packs rows for upload; never empty. */
export function packLogitParams(rows: readonly LogitParams[]): Uint32Array {
  const words = new Uint32Array(Math.max(1, rows.length) * LOGIT_PARAMS_WORDS);
  const f32 = new Float32Array(words.buffer);
  rows.forEach((p, r) => {
    validateLogitParams(p, r);
    const o = r * LOGIT_PARAMS_WORDS;
    f32[o] = p.presencePenalty;
    f32[o + 1] = p.frequencyPenalty;
    f32[o + 2] = p.repetitionPenalty;
    words[o + 3] = p.countsRow;
    words[o + 4] = p.biasStart;
    words[o + 5] = p.biasLength;
    words[o + 6] = p.topLogprobs;
  });
  return words;
}

/** logit_bias entries as the bias buffer holds them: (token id, f32 bits) pairs; never empty. */
export function packLogitBias(entries: readonly (readonly [number, number])[], vocab: number): Uint32Array {
  const words = new Uint32Array(Math.max(1, entries.length) * 2);
  const f32 = new Float32Array(words.buffer);
  entries.forEach(([id, v], j) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocab) throw new RangeError(`logit bias: token ${id} outside [0, ${vocab})`);
    if (!Number.isFinite(v)) throw new RangeError(`logit bias: value ${v} for token ${id} is not finite`);
    words[2 * j] = id;
    f32[2 * j + 1] = v;
  });
  return words;
}

/** A counts row as the GPU keeps it: PROMPT_BIT for prompt tokens, plus the output counts. */
export function countsRow(vocab: number, promptIds: readonly number[], outputIds: readonly number[]): Uint32Array {
  const row = new Uint32Array(vocab);
  for (const id of promptIds) row[id] = PROMPT_BIT;
  for (const id of outputIds) row[id] = row[id]! + 1;
  return row;
}

/** One token's logprob output as read back: [LOGPROBS_WORDS] words per row. */
export interface TokenLogprobs {
  readonly logprob: number;
  /** The top alternatives, most probable first (ties: lower id first). */
  readonly top: readonly { readonly id: number; readonly logprob: number }[];
}

export function unpackLogprobs(words: Uint32Array, row: number, top: number): TokenLogprobs {
  const f32 = new Float32Array(words.buffer, words.byteOffset, words.length);
  const o = row * LOGPROBS_WORDS;
  return { logprob: f32[o]!, top: Array.from({ length: top }, (_, j) => ({ id: words[o + 1 + 2 * j]!, logprob: f32[o + 2 + 2 * j]! })) };
}

/** A request's settings for the kernels around the sampler (WireSampling's optional fields, same names). */
export interface LogitSettings {
  readonly presencePenalty?: number;
  readonly frequencyPenalty?: number;
  readonly repetitionPenalty?: number;
  /** (token id, bias) pairs, ids distinct. */
  readonly logitBias?: readonly (readonly [number, number])[];
  /** Top alternatives to report with each token's logprob; undefined = no logprobs. */
  readonly logprobs?: number;
}

/** Whether any kernel around the sampler has work for these settings. */
export const hasLogitWork = (s: LogitSettings): boolean => needsCounts(penaltiesOf(s)) || (s.logitBias?.length ?? 0) > 0 || s.logprobs !== undefined;

export const penaltiesOf = (s: LogitSettings) => ({
  presencePenalty: s.presencePenalty ?? 0, frequencyPenalty: s.frequencyPenalty ?? 0, repetitionPenalty: s.repetitionPenalty ?? 1,
});

/**
 * Params and bias buffers' contents for rows of settings: `countsRows[r]` is row r's counts row (NO_COUNTS
 * where it needs none).
 */
export function packLogitRows(rows: readonly LogitSettings[], countsRows: readonly number[], vocab: number): { params: Uint32Array; bias: Uint32Array } {
  const entries: (readonly [number, number])[] = [];
  const params = packLogitParams(rows.map((s, r) => {
    const biasStart = entries.length;
    entries.push(...(s.logitBias ?? []));
    return { ...penaltiesOf(s), countsRow: countsRows[r]!, biasStart, biasLength: s.logitBias?.length ?? 0, topLogprobs: s.logprobs ?? NO_LOGPROBS };
  }));
  return { params, bias: packLogitBias(entries, vocab) };
}
