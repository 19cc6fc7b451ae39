// Keeps the decode reservations of requests whose prefill has not finished: every third of its lease, each
// such request is named in a renew on its node's control subject (one message per node per tick, ids
// batched), so a job that waits long in the prefill queue still finds its pages. A request leaves with its
// first tokens message (the node committed it: no lease any more) or with its end.
import type { NatsConnection } from '@nats-io/transport-node';
import { MAX_RENEW_IDS, encodeMessage, renewMessage, type WireSubjects } from '@latentwire/protocol';
import type { Logger } from 'pino';

interface Held {
  readonly nodeId: string;
  readonly everyMs: number;
  next: number;
}

const TICK_MS = 25;

export class LeaseRenewer {
  private readonly held = new Map<string, Held>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subjects: WireSubjects,
    private readonly logger: Logger,
  ) {}

  get size(): number {
    return this.held.size;
  }

  /** Starts renewing a grant of `leaseMs` on `nodeId`. */
  hold(requestId: string, nodeId: string, leaseMs: number): void {
    const everyMs = Math.max(TICK_MS, Math.floor(leaseMs / 3));
    this.held.set(requestId, { nodeId, everyMs, next: performance.now() + everyMs });
    this.timer ??= setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  release(requestId: string): void {
    this.held.delete(requestId);
    if (this.held.size === 0 && this.timer) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }

  close(): void {
    this.held.clear();
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = performance.now();
    const due = new Map<string, string[]>();
    for (const [id, h] of this.held) {
      if (h.next > now) continue;
      h.next = now + h.everyMs;
      const ids = due.get(h.nodeId) ?? [];
      due.set(h.nodeId, [...ids, id]);
    }
    if (this.nc.isClosed()) return;
    for (const [nodeId, ids] of due) {
      for (let i = 0; i < ids.length; i += MAX_RENEW_IDS) {
        try {
          this.nc.publish(this.subjects.control(nodeId), encodeMessage(renewMessage({ requestIds: ids.slice(i, i + MAX_RENEW_IDS) })));
        } catch (err) {
          this.logger.warn({ err, nodeId }, 'lease renewal not sent');
        }
      }
    }
  }
}
