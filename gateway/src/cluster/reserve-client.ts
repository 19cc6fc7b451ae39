// One reserve request to one decode node, and what came of it. Transport failures are outcomes too: the
// caller moves on to the next node either way.
import { NoRespondersError, RequestError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import {
  SUBJECT_TYPES, cancelMessage, encodeMessage, reserveMessage, type Reserve, type ReserveRefusal, type ReserveReply, type WireRejections, type WireSubjects,
} from '@latentwire/protocol';
import type { DecodeNode } from './decode-registry.js';

export type ReserveOutcome =
  | { readonly ok: true; readonly reply: ReserveReply }
  | {
      readonly ok: false;
      readonly reason: ReserveRefusal | 'timeout' | 'no-responders' | 'bad-reply' | 'transport';
      /** The refusal, when the node sent one (its freePages is fresh). */
      readonly reply?: ReserveReply;
      readonly error?: unknown;
    };

export interface ReserveCall {
  readonly nc: NatsConnection;
  readonly subjects: WireSubjects;
  readonly rejections: WireRejections;
  readonly timeoutMs: number;
}

export async function requestReservation(
  call: ReserveCall,
  node: DecodeNode,
  r: Omit<Reserve, 'v' | 'type' | 'layoutKey'>,
): Promise<ReserveOutcome> {
  const { nc, subjects, rejections, timeoutMs } = call;
  const subject = subjects.reserve(node.nodeId);
  const msg = reserveMessage({ ...r, layoutKey: node.heartbeat.layoutKey });
  let data: Uint8Array;
  try {
    data = (await nc.request(subject, encodeMessage(msg), { timeout: timeoutMs })).data;
  } catch (error) {
    if (isTimeout(error)) {
      // The node may still grant after we gave up: tell it to drop the request so the pages are not held
      // until the lease runs out.
      nc.publish(subjects.control(node.nodeId), encodeMessage(cancelMessage({ requestId: r.requestId, reason: 'deadline' })));
      return { ok: false, reason: 'timeout', error };
    }
    return { ok: false, reason: isNoResponders(error) ? 'no-responders' : 'transport', error };
  }
  const reply = rejections.decode(data, `${subject} (reply)`, SUBJECT_TYPES.reserveReply);
  if (!reply || reply.requestId !== r.requestId) return { ok: false, reason: 'bad-reply' };
  return reply.ok ? { ok: true, reply } : { ok: false, reason: reply.reason!, reply };
}

function isTimeout(e: unknown): boolean {
  return e instanceof TimeoutError || (e instanceof Error && e.cause instanceof TimeoutError);
}

function isNoResponders(e: unknown): boolean {
  return e instanceof NoRespondersError || (e instanceof RequestError && e.isNoResponders());
}
