// reserve: gateway → decode node (request/reply), before a prefill starts: hold pages for the prompt's KV
// and the completion. reserve-reply: granted (ok, pages held for leaseMs) or refused with a reason.
import { z } from 'zod';
import { label, layoutKey, positiveU32, u32, wireId } from '../fields.js';
import { compact, WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

export interface Reserve extends Envelope<'reserve'> {
  readonly requestId: string;
  readonly promptTokens: number;
  readonly maxTokens: number;
  /** What the prefill will run; the node refuses ('incompatible') unless both equal its own. */
  readonly fingerprint: string;
  readonly layoutKey: string;
}

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
    fingerprint: label,
    layoutKey,
  }),
  describe: (m) => ({ type: m.type, requestId: m.requestId, promptTokens: m.promptTokens, maxTokens: m.maxTokens, layoutKey: m.layoutKey }),
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
