// cancel: gateway → the decode node holding the request (its control subject) and → every prefill node
// (the prefill-cancel broadcast): stop work on requestId and free what it holds.
import { z } from 'zod';
import { wireId } from '../fields.js';
import { WIRE_VERSION, type Envelope, type Fields, type MessageSpec } from './spec.js';

export const CANCEL_REASONS = ['client-disconnected', 'deadline', 'prefill-failed', 'decode-failed', 'shutdown'] as const;
export type CancelReason = (typeof CANCEL_REASONS)[number];

export interface Cancel extends Envelope<'cancel'> {
  readonly requestId: string;
  readonly reason: CancelReason;
}

export function cancelMessage(f: Fields<Cancel>): Cancel {
  return { v: WIRE_VERSION, type: 'cancel', ...f };
}

export const cancelSpec: MessageSpec<Cancel> = {
  schema: z.object({
    v: z.literal(WIRE_VERSION),
    type: z.literal('cancel'),
    requestId: wireId,
    reason: z.enum(CANCEL_REASONS),
  }),
  describe: (m) => ({ type: m.type, requestId: m.requestId, reason: m.reason }),
};
