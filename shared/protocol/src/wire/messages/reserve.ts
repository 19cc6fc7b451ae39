// reserve: gateway → decode node (request/reply), before a prefill starts: hold pages for the prompt's KV
// and the completion, and keep how the completion is to be generated (sampling, max tokens, stop ids): the
// decode node owns the request's generation from here, so these never travel through the prefill queue.
// reserve-reply: granted (ok, pages held for leaseMs) or refused with a reason.
import { z } from 'zod';
import { bytes, label, layoutKey, positiveU32, tokenIds, u32, wireId } from '../fields.js';
import { MAX_STOP_TOKENS, MAX_WIRE_CHOICES, wireSamplingSchema, type WireSampling } from './sampling.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

export interface Reserve extends Envelope<'reserve'> {
  readonly requestId: string;
  /** Tokens the prefill covers (the prompt). */
  readonly promptTokens: number;
  /** Completion tokens allowed, the prefill's first token (or the replayTokens) included. */
  readonly maxTokens: number;
  /** The completion's sampling; the prefill samples the first token with the same settings (counter 0). */
  readonly sampling: WireSampling;
  /** Tokens that end the completion (finish 'stop'): the user's stop ids, then the model's EOS ids. */
  readonly stopTokenIds: readonly number[];
  readonly eosTokenIds: readonly number[];
  /** What the prefill will run; the node refuses ('incompatible') unless both equal its own. */
  readonly fingerprint: string;
  readonly layoutKey: string;
  /**
   * With a repetition penalty only (the decode node never sees the prompt's ids): the set of token ids in the
   * prompt, a bitset (bit i % 8 of byte i >> 3 = token i occurs).
   */
  readonly promptTokenSet?: Uint8Array;
  /**
   * The asking gateway's id (its gateway-heartbeat's): the node ends the request if that gateway goes
   * silent. Absent: the request is not tied to a gateway's presence.
   */
  readonly gatewayId?: string;
  /**
   * Choices (n > 1): that many completions of the prompt, each of maxTokens, sharing the prompt's pages (its
   * KV arrives once). Absent = 1; a node that predates it strips it and reserves one.
   */
  readonly n?: number;
  /**
   * A request resumed after its decode node was lost: the tokens it had already generated there (the tail of
   * its prompt, prefilled again with it). The node seeds the penalties' output counts and advances the
   * grammar's state over them before sampling, so the resume samples what the lost node would have. Absent:
   * a fresh request (or one whose sampling keeps no such state). n must then be 1. Only for a resume past
   * the gateway's RESUME_REPLAY_MAX_TOKENS (approximate on a quantized cache); the others carry replayTokens.
   */
  readonly resumeTokens?: readonly number[];
  /**
   * A request resumed after its decode node was lost, replayed: the tokens it had already generated there (its
   * first replayTokens.length completion tokens), which the prompt does not hold. Everything else is the
   * original request's (prompt, maxTokens, sampling with its counter start). The node discards the prefill's
   * first token and feeds these through teacher-forced decode steps inside its batch, so their KV is written
   * as the lost node wrote it (bit for bit on a quantized cache, where a prefill's would differ), sends none
   * of them, and sends what the step fed the last one samples as the first new token. Fewer than maxTokens;
   * n must be 1; not with resumeTokens.
   */
  readonly replayTokens?: readonly number[];
}

/** Most tokens a resume may carry as already generated (1.3 bytes of msgpack each at most: well under max_payload). */
export const MAX_RESUME_TOKENS = 1 << 16;

/** Bytes of a prompt token set: vocabularies up to 2^21 tokens. */
export const MAX_PROMPT_TOKEN_SET_BYTES = 1 << 18;

export const RESERVE_REFUSALS = ['no-pages', 'too-large', 'duplicate-id', 'incompatible', 'queue-full'] as const;
export type ReserveRefusal = (typeof RESERVE_REFUSALS)[number];

export interface ReserveReply extends Envelope<'reserve-reply'> {
  readonly requestId: string;
  readonly ok: boolean;
  /** Present exactly when !ok. 'no-pages' and 'queue-full' are worth retrying (later or elsewhere). */
  readonly reason?: ReserveRefusal;
  /** Pages granted (0 when refused). */
  readonly pages: number;
  /** The node's free pages after this reply, so the gateway's view stays fresh between heartbeats. */
  readonly freePages: number;
  /** How long the grant lasts without a prefill-done (ms); 0 when refused. */
  readonly leaseMs: number;
}

export function reserveMessage(f: Fields<Reserve>): Reserve {
  return compact({ v: WIRE_VERSION, type: 'reserve', ...f });
}

export function reserveReplyMessage(f: Fields<ReserveReply>): ReserveReply {
  return compact({ v: WIRE_VERSION, type: 'reserve-reply', ...f });
}

export const reserveSpec: MessageSpec<Reserve> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('reserve'),
    requestId: wireId,
    promptTokens: positiveU32,
    maxTokens: positiveU32,
    sampling: wireSamplingSchema,
    stopTokenIds: tokenIds(MAX_STOP_TOKENS),
    eosTokenIds: tokenIds(MAX_STOP_TOKENS),
    fingerprint: label,
    layoutKey,
    promptTokenSet: bytes.refine((b) => b.byteLength <= MAX_PROMPT_TOKEN_SET_BYTES, `at most ${MAX_PROMPT_TOKEN_SET_BYTES} bytes`).optional(),
    gatewayId: wireId.optional(),
    n: z.number().int().min(1).max(MAX_WIRE_CHOICES).optional(),
    resumeTokens: tokenIds(MAX_RESUME_TOKENS).optional(),
    replayTokens: tokenIds(MAX_RESUME_TOKENS).optional(),
  }),
  check(m) {
    const r = m.resumeTokens?.length ?? 0;
    // the generated tokens are the prompt's tail: at least one real prompt token precedes them
    if (r >= m.promptTokens) return { reason: 'invalid', detail: `resumeTokens: ${r} in a prompt of ${m.promptTokens} tokens (they are its tail)` };
    if (r > 0 && (m.n ?? 1) > 1) return { reason: 'invalid', detail: 'resumeTokens with n > 1 (each choice resumes on its own)' };
    const k = m.replayTokens?.length ?? 0;
    if (k === 0) return undefined;
    // at least one token is left to generate after them
    if (k >= m.maxTokens) return { reason: 'invalid', detail: `replayTokens: ${k} of maxTokens ${m.maxTokens} (they count in it, one must be left)` };
    if ((m.n ?? 1) > 1) return { reason: 'invalid', detail: 'replayTokens with n > 1 (each choice resumes on its own)' };
    if (r > 0) return { reason: 'invalid', detail: 'replayTokens with resumeTokens (a resume replays or prefills again, not both)' };
    return undefined;
  },
  describe: (m) => ({
    type: m.type, requestId: m.requestId, promptTokens: m.promptTokens, maxTokens: m.maxTokens, temperature: m.sampling.temperature,
    layoutKey: m.layoutKey, resumeTokens: m.resumeTokens?.length, replayTokens: m.replayTokens?.length,
  }),
};

export const reserveReplySpec: MessageSpec<ReserveReply> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('reserve-reply'),
    requestId: wireId,
    ok: z.boolean(),
    reason: z.enum(RESERVE_REFUSALS).optional(),
    pages: u32,
    freePages: u32,
    leaseMs: u32,
  }),
  check(m) {
    if (m.ok && m.reason !== undefined) return { reason: 'invalid', detail: `ok with reason ${m.reason}` };
    if (!m.ok && m.reason === undefined) return { reason: 'invalid', detail: 'not ok and no reason' };
    if (m.ok && m.pages === 0) return { reason: 'invalid', detail: 'ok with 0 pages' };
    if (!m.ok && (m.pages !== 0 || m.leaseMs !== 0)) return { reason: 'invalid', detail: `not ok with pages=${m.pages}, leaseMs=${m.leaseMs}` };
    return undefined;
  },
  describe: (m) => ({
    type: m.type, requestId: m.requestId, ok: m.ok, reason: m.reason, pages: m.pages, freePages: m.freePages, leaseMs: m.leaseMs,
  }),
};
