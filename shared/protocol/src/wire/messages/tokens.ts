// tokens: decode node → gateway on the request's own subject. `seq` counts this request's messages from 0,
// so a gap means one was lost (NATS core is at-most-once). The last message has a finishReason and usage.
import { z } from 'zod';
import { text, tokenIds, u32, wireId } from '../fields.js';
import { prefillTimingSchema, type PrefillTiming } from './prefill.js';
import { promptLogprobsSchema, wireLogprobsSchema, type WireLogprobs } from './sampling.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

export const FINISH_REASONS = ['stop', 'length', 'cancelled', 'error'] as const;
export type FinishReason = (typeof FINISH_REASONS)[number];

/** Tokens per message; a node batches what a step produced, far below this. */
export const MAX_TOKENS_PER_MESSAGE = 65536;

export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface Tokens extends Envelope<'tokens'> {
  readonly requestId: string;
  readonly seq: number;
  /** Completion token ids, in order; may be empty in the final message. */
  readonly tokens: readonly number[];
  /** Present on the last message only. */
  readonly finishReason?: FinishReason;
  /** Present on the last message only (needs finishReason). */
  readonly usage?: Usage;
  /** Present exactly when finishReason is 'error'; for people, no prompt text. */
  readonly error?: string;
  /** On the first message only, when the prefill-done carried it: where the prefill's time went. */
  readonly timing?: PrefillTiming;
  /** When the request asked for logprobs: one entry per token of `tokens`, in order. */
  readonly logprobs?: readonly WireLogprobs[];
  /** On the first message only, when the prefill-done carried them: the prompt's logprobs (echo with logprobs). */
  readonly promptLogprobs?: readonly WireLogprobs[];
}

export function tokensMessage(f: Fields<Tokens>): Tokens {
  return compact({ v: WIRE_VERSION, type: 'tokens', ...f });
}

export const tokensSpec: MessageSpec<Tokens> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('tokens'),
    requestId: wireId,
    seq: u32,
    tokens: tokenIds(MAX_TOKENS_PER_MESSAGE),
    finishReason: z.enum(FINISH_REASONS).optional(),
    usage: z.object({ promptTokens: u32, completionTokens: u32 }).optional(),
    error: text(1000).min(1).optional(),
    timing: prefillTimingSchema.optional(),
    logprobs: z.array(wireLogprobsSchema).max(MAX_TOKENS_PER_MESSAGE).optional(),
    promptLogprobs: promptLogprobsSchema().optional(),
  }),
  check(m) {
    if (m.logprobs !== undefined && m.logprobs.length !== m.tokens.length) {
      return { reason: 'invalid', detail: `${m.logprobs.length} logprobs entries for ${m.tokens.length} tokens` };
    }
    if ((m.finishReason === 'error') !== (m.error !== undefined)) {
      return { reason: 'invalid', detail: `error ${m.error === undefined ? 'missing' : 'present'} with finishReason ${m.finishReason ?? '(none)'}` };
    }
    if (m.usage !== undefined && m.finishReason === undefined) return { reason: 'invalid', detail: 'usage on a message without finishReason' };
    return undefined;
  },
  describe: (m) => ({
    type: m.type, requestId: m.requestId, seq: m.seq, tokenCount: m.tokens.length, finishReason: m.finishReason,
    promptTokens: m.usage?.promptTokens, completionTokens: m.usage?.completionTokens, error: m.error,
  }),
};
