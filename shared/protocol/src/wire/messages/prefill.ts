// prefill-done: prefill → decode node, after every kv-chunk of the last layer was acked: the sequence can
// start decoding from `firstToken`. prefill-done-ack: the node committed it (or why not). prefill-failed:
// the prefill gave up; the node drops the reservation.
import { z } from 'zod';
import { label, layoutKey, positiveU32, text, tokenId, tokenIds, u32, wireId } from '../fields.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

/** Same meaning and ranges as the decode node's SamplingParams. */
export interface WireSampling {
  /** 0 = greedy; in [0, 100]. */
  readonly temperature: number;
  /** 0 = no top-k cut. */
  readonly topK: number;
  /** In (0, 1]. */
  readonly topP: number;
  /** u32 PRNG seed. */
  readonly seed: number;
}

export const MAX_STOP_TOKENS = 256;

/** WireSampling's ranges, for every message and job that carries sampling settings. */
export const wireSamplingSchema = z.object({
  temperature: z.number().min(0).max(100),
  topK: u32,
  topP: z.number().gt(0).max(1),
  seed: u32,
});

export interface PrefillDone extends Envelope<'prefill-done'> {
  readonly requestId: string;
  readonly promptTokens: number;
  /** Layers whose KV was sent (all of the model's). */
  readonly layers: number;
  /** The token the prefill sampled from the last prompt position: the completion's first. */
  readonly firstToken: number;
  readonly sampling: WireSampling;
  /** Completion tokens allowed, firstToken included. */
  readonly maxTokens: number;
  readonly stopTokenIds: readonly number[];
  readonly eosTokenIds: readonly number[];
  readonly layoutKey: string;
  readonly fingerprint: string;
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
  return { v: WIRE_VERSION, type: 'prefill-done', ...f };
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
    sampling: wireSamplingSchema,
    maxTokens: positiveU32,
    stopTokenIds: tokenIds(MAX_STOP_TOKENS),
    eosTokenIds: tokenIds(MAX_STOP_TOKENS),
    layoutKey,
    fingerprint: label,
  }),
  describe: (m) => ({
    type: m.type, requestId: m.requestId, promptTokens: m.promptTokens, layers: m.layers, maxTokens: m.maxTokens,
    temperature: m.sampling.temperature, layoutKey: m.layoutKey,
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
