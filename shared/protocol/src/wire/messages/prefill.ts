// prefill-done: prefill → decode node, after every kv-chunk of the last layer was acked: the sequence can
// start decoding from `firstToken`, with the generation settings its reserve carried. prefill-done-ack: the node committed it (or why not). prefill-failed:
// the prefill gave up; the node drops the reservation.
import { z } from 'zod';
import { label, layoutKey, positiveU32, text, tokenId, wireId } from '../fields.js';
import { MAX_WIRE_CHOICES, promptLogprobsSchema, wireLogprobsSchema, type WireLogprobs } from './sampling.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

/**
 * Where a prefill's time went (ms), for the gateway's time-to-first-token split. Optional on the wire: a
 * receiver that predates it drops it (schemas strip unknown keys), a sender that predates it omits it.
 */
export interface PrefillTiming {
  /** From the job's enqueue (its BullMQ timestamp, the gateway's clock) to a worker taking it (this node's clock). */
  readonly queueMs: number;
  /** The forward pass, KV streaming out meanwhile. */
  readonly prefillMs: number;
  /** From the forward's end to the last kv-ack: the transfer the forward did not hide. */
  readonly kvTransferMs: number;
}

/** Up to a day each; fractions allowed. */
const durationMs = z.number().min(0).max(86_400_000);
export const prefillTimingSchema = z.object({ queueMs: durationMs, prefillMs: durationMs, kvTransferMs: durationMs });

export interface PrefillDone extends Envelope<'prefill-done'> {
  readonly requestId: string;
  readonly promptTokens: number;
  /** Layers whose KV was sent (all of the model's). */
  readonly layers: number;
  /** The token the prefill sampled from the last prompt position: the completion's first. */
  readonly firstToken: number;
  readonly layoutKey: string;
  readonly fingerprint: string;
  /** Where the prefill's time went; the decode node passes it on in the first tokens message. */
  readonly timing?: PrefillTiming;
  /** The first token's logprobs, when the job's sampling asked for them; passed on with the token. */
  readonly firstLogprobs?: WireLogprobs;
  /**
   * Choices 1 … n-1 of an n > 1 request (the job's n): each one's first token, sampled from the same logits
   * with that choice's seed (choiceSampling), and its logprobs when asked. firstToken is choice 0's. Absent
   * for one choice, so a peer that predates it sends and reads the same messages.
   */
  readonly moreChoices?: readonly { readonly firstToken: number; readonly firstLogprobs?: WireLogprobs }[];
  /** When the job asked for them: prompt token i + 1's logprobs (promptTokens - 1 entries); passed on with the first tokens. */
  readonly promptLogprobs?: readonly WireLogprobs[];
}

export const PREFILL_DONE_REFUSALS = ['no-reservation', 'incomplete', 'too-large', 'incompatible', 'cancelled'] as const;
export type PrefillDoneRefusal = (typeof PREFILL_DONE_REFUSALS)[number];

export interface PrefillDoneAck extends Envelope<'prefill-done-ack'> {
  readonly requestId: string;
  readonly ok: boolean;
  /** Present exactly when !ok. 'incomplete': some page of some layer never arrived. */
  readonly reason?: PrefillDoneRefusal;
  readonly detail?: string;
}

export interface PrefillFailed extends Envelope<'prefill-failed'> {
  readonly requestId: string;
  /** For people; an error message, never prompt text. */
  readonly reason: string;
}

export function prefillDoneMessage(f: Fields<PrefillDone>): PrefillDone {
  return compact({ v: WIRE_VERSION, type: 'prefill-done', ...f });
}

export function prefillDoneAckMessage(f: Fields<PrefillDoneAck>): PrefillDoneAck {
  return compact({ v: WIRE_VERSION, type: 'prefill-done-ack', ...f });
}

export function prefillFailedMessage(f: Fields<PrefillFailed>): PrefillFailed {
  return { v: WIRE_VERSION, type: 'prefill-failed', ...f };
}

export const prefillDoneSpec: MessageSpec<PrefillDone> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('prefill-done'),
    requestId: wireId,
    promptTokens: positiveU32,
    layers: positiveU32,
    firstToken: tokenId,
    layoutKey,
    fingerprint: label,
    timing: prefillTimingSchema.optional(),
    firstLogprobs: wireLogprobsSchema.optional(),
    moreChoices: z.array(z.object({ firstToken: tokenId, firstLogprobs: wireLogprobsSchema.optional() })).min(1).max(MAX_WIRE_CHOICES - 1).optional(),
    promptLogprobs: promptLogprobsSchema().optional(),
  }),
  describe: (m) => ({
    type: m.type, requestId: m.requestId, promptTokens: m.promptTokens, layers: m.layers, layoutKey: m.layoutKey,
  }),
};

export const prefillDoneAckSpec: MessageSpec<PrefillDoneAck> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('prefill-done-ack'),
    requestId: wireId,
    ok: z.boolean(),
    reason: z.enum(PREFILL_DONE_REFUSALS).optional(),
    detail: text(1000).optional(),
  }),
  check: (m) => (m.ok === (m.reason === undefined) ? undefined : { reason: 'invalid', detail: m.ok ? `ok with reason ${m.reason}` : 'not ok and no reason' }),
  describe: (m) => ({ type: m.type, requestId: m.requestId, ok: m.ok, reason: m.reason, detail: m.detail }),
};

export const prefillFailedSpec: MessageSpec<PrefillFailed> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('prefill-failed'),
    requestId: wireId,
    reason: text(1000).min(1),
  }),
  describe: (m) => ({ type: m.type, requestId: m.requestId, reason: m.reason }),
};
