// Sampling settings as they cross the wire: the reserve carries them to the decode node, the prefill job
// to the prefill worker (which samples the completion's first token). The penalty, logit_bias and logprobs
// fields are optional: absent means off, so a peer that predates them sends and reads the same requests.
import { z } from 'zod';
import { tokenId, u32 } from '../fields.js';

/** Same meaning and ranges as the decode node's SamplingParams and LogitParams. */
export interface WireSampling {
  /** 0 = greedy; in [0, 100]. */
  readonly temperature: number;
  /** 0 = no top-k cut. */
  readonly topK: number;
  /** In (0, 1]. */
  readonly topP: number;
  /** u32 PRNG seed. */
  readonly seed: number;
  /** OpenAI presence_penalty, [-2, 2]; absent = 0. */
  readonly presencePenalty?: number;
  /** OpenAI frequency_penalty, [-2, 2]; absent = 0. */
  readonly frequencyPenalty?: number;
  /** HF / vLLM repetition_penalty, > 0 (at most MAX_REPETITION_PENALTY); absent = 1. */
  readonly repetitionPenalty?: number;
  /** OpenAI logit_bias as (token id, bias in [-100, 100]) pairs, ids distinct; absent = none. */
  readonly logitBias?: readonly (readonly [number, number])[];
  /** Logprobs of every generated token with this many top alternatives (0..MAX_WIRE_TOP_LOGPROBS); absent = none. */
  readonly logprobs?: number;
  /**
   * Constrained decoding (response_format json_object / json_schema, forced tool calls): a GrammarSpec
   * (@latentwire/model's grammar), which both the prefill worker (first token) and the decode node compile over
   * their vocabulary; checked there. Absent = unconstrained.
   */
  readonly grammar?: WireGrammar;
  /**
   * The sampler's counter for the first token this request generates (absent = 0): a request resumed on
   * another node after its node was lost goes on with the counter where the lost one stopped, so seeded
   * sampling continues exactly (its prompt then holds the tokens already sent).
   */
  readonly counterStart?: number;
}

/** A GrammarSpec as the wire sees it: its node tree is checked by the nodes that compile it. */
export interface WireGrammar {
  readonly root: unknown;
  /** The request's max_tokens, so the first token's mask (on the prefill node) already keeps the output closable within it. */
  readonly maxTokens?: number;
}

/** The most bytes a grammar may take as JSON (a schema of a few hundred properties). */
export const MAX_GRAMMAR_BYTES = 64 * 1024;

export const MAX_STOP_TOKENS = 256;
/**
 * Bound on prompt logprobs (echo with logprobs) in one message: entries plus their top alternatives, at most
 * this many (token, logprob) pairs (~0.5 MB of msgpack), so the message stays under NATS's default max_payload.
 */
export const MAX_PROMPT_LOGPROB_PAIRS = 32768;
/** promptLogprobs as the prefill job, prefill-done and the first tokens message carry it. */
export const promptLogprobsSchema = () =>
  z.array(wireLogprobsSchema).max(MAX_PROMPT_LOGPROB_PAIRS).refine(
    (e) => e.reduce((n, x) => n + 1 + x.top.length, 0) <= MAX_PROMPT_LOGPROB_PAIRS,
    `at most ${MAX_PROMPT_LOGPROB_PAIRS} (token, logprob) pairs`,
  );

/** Most choices (completions of one prompt sharing its prefill and prompt pages) one request may ask for. */
export const MAX_WIRE_CHOICES = 128;

/**
 * The id choice `index` of an n > 1 request goes by on the decode node and on the wire (its tokens subject,
 * its cancel): `<requestId>.<index>`. A request of one choice keeps its own id.
 */
export function choiceRequestId(requestId: string, index: number): string {
  return `${requestId}.${index}`;
}

/** Choice `index`'s sampling: its own seed stream, seed + index (mod 2^32), so each choice equals a solo request with that seed. */
export function choiceSampling<S extends { readonly seed: number }>(sampling: S, index: number): S {
  return { ...sampling, seed: (sampling.seed + index) >>> 0 };
}
export const MAX_LOGIT_BIAS = 1024;
export const MAX_WIRE_TOP_LOGPROBS = 20;
export const MAX_REPETITION_PENALTY = 100;

/** WireSampling's ranges, for every message and job that carries sampling settings. */
export const wireSamplingSchema = z.object({
  temperature: z.number().min(0).max(100),
  topK: u32,
  topP: z.number().gt(0).max(1),
  seed: u32,
  presencePenalty: z.number().min(-2).max(2).optional(),
  frequencyPenalty: z.number().min(-2).max(2).optional(),
  repetitionPenalty: z.number().gt(0).max(MAX_REPETITION_PENALTY).optional(),
  logitBias: z
    .array(z.tuple([tokenId, z.number().min(-100).max(100)]))
    .max(MAX_LOGIT_BIAS)
    .refine((e) => new Set(e.map(([id]) => id)).size === e.length, 'token ids must be distinct')
    .optional(),
  logprobs: z.number().int().min(0).max(MAX_WIRE_TOP_LOGPROBS).optional(),
  grammar: z
    .object({ root: z.record(z.string(), z.unknown()), maxTokens: z.number().int().positive().optional() })
    .refine((g) => JSON.stringify(g).length <= MAX_GRAMMAR_BYTES, `at most ${MAX_GRAMMAR_BYTES} bytes as JSON`)
    .optional(),
  counterStart: u32.optional(),
});

/** One generated token's logprob and its top alternatives as (token id, logprob) pairs, most probable first. */
export interface WireLogprobs {
  readonly logprob: number;
  readonly top: readonly (readonly [number, number])[];
}

/** Logprobs are <= 0 (f32 rounding may leave a hair above). */
const logprob = z.number().max(1e-3);
export const wireLogprobsSchema = z.object({
  logprob,
  top: z.array(z.tuple([tokenId, logprob])).max(MAX_WIRE_TOP_LOGPROBS),
});
