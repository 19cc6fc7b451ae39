// Cancels to decode nodes, acknowledged: each is sent as a NATS request on the node's control subject and
// answered with a cancel-ack; an unanswered one is resent (CANCEL_ACK_TIMEOUT_MS apart, CANCEL_ATTEMPTS in
// all). A node that never acks is either gone (its pages went with it) or unreachable: its lease (before
// prefill-done) or its gateway-silence check (after) frees the pages then. Never throws; `settled()` waits
// for the cancels still being retried (the gateway's shutdown does).
import { NoRespondersError, RequestError, type NatsConnection } from '@nats-io/transport-node';
import { SUBJECT_TYPES, cancelMessage, encodeMessage, type CancelReason, type WireRejections, type WireSubjects } from '@latentwire/protocol';
import type { Logger } from 'pino';

export interface CancellerOptions {
  readonly nc: NatsConnection;
  readonly subjects: WireSubjects;
  readonly rejections: WireRejections;
  readonly ackTimeoutMs: number;
  readonly attempts: number;
  readonly logger: Logger;
  /** Whether the node is still in the pool: a node gone from it is not retried (no-responders ends it too). */
  readonly nodeKnown?: (nodeId: string) => boolean;
  /** Hears how each cancel ended (metrics). */
  readonly onOutcome?: (outcome: CancelOutcome) => void;
}

export type CancelOutcome = 'acked' | 'no-responders' | 'unacked' | 'closed';

export class Canceller {
  private readonly inFlight = new Set<Promise<CancelOutcome>>();

  constructor(private readonly o: CancellerOptions) {}

  /** Sends the cancel until acked; resolves with how it ended. */
  cancel(nodeId: string, requestId: string, reason: CancelReason): Promise<CancelOutcome> {
    const p = this.run(nodeId, requestId, reason).then((outcome) => {
      this.o.onOutcome?.(outcome);
      return outcome;
    });
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
    return p;
  }

  /** Resolves once every cancel sent so far is acked or given up, or after `timeoutMs`. */
  async settled(timeoutMs: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all([...this.inFlight]), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }

  private async run(nodeId: string, requestId: string, reason: CancelReason): Promise<CancelOutcome> {
    const { nc, subjects, rejections, ackTimeoutMs, attempts, logger } = this.o;
    const subject = subjects.control(nodeId);
    const bytes = encodeMessage(cancelMessage({ requestId, reason }));
    for (let attempt = 1; attempt <= attempts; attempt++) {
      if (nc.isClosed()) return 'closed';
      try {
        const reply = await nc.request(subject, bytes, { timeout: ackTimeoutMs });
        const ack = rejections.decode(reply.data, `${subject} (reply)`, SUBJECT_TYPES.cancelReply);
        if (ack && ack.requestId === requestId) return 'acked';
      } catch (err) {
        if (err instanceof NoRespondersError || (err instanceof RequestError && err.isNoResponders())) {
          // Nobody listens on the node's subject: it is gone (or reconnecting). Retry while it is still in the pool.
          if (this.o.nodeKnown && !this.o.nodeKnown(nodeId)) return 'no-responders';
          await new Promise((r) => setTimeout(r, ackTimeoutMs));
        }
      }
      if (attempt < attempts) logger.debug({ requestId, nodeId, attempt }, 'cancel not acknowledged: resending');
    }
    logger.warn({ requestId, nodeId, attempts }, 'cancel never acknowledged; the node frees the pages by lease or gateway silence');
    return 'unacked';
  }
}
