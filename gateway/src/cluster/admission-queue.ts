// Requests that no decode node could reserve pages for wait here, bounded in number and in time.
//   - wait() enters a request; it leaves with 'capacity' (worth another reserve round), 'timeout' at its
//     deadline, 'aborted' when its signal fires, or 'no-nodes' when no compatible node is left.
//   - offer(nodes), called on each heartbeat, wakes waiters in arrival order while some node's free pages
//     cover them, charging each woken waiter's pages to that node so one freed page wakes one request, not
//     all of them. A waiter too big for what is free is skipped, not blocking smaller ones behind it (as
//     vLLM's scheduler skips); a woken waiter that is refused again comes back with its original arrival.
//   - Only heartbeats offer capacity: a reserve refusal never wakes anyone, so a node that keeps refusing
//     costs at most one reserve round per waiter per heartbeat.
import { headroomOf } from './headroom.js';
import type { DecodeNode } from './decode-registry.js';

export type WakeReason = 'capacity' | 'timeout' | 'aborted' | 'no-nodes';

export interface AdmissionTicket {
  /** Order of first arrival; kept across re-entries. */
  readonly arrival: number;
  /** Prompt + max completion tokens. */
  readonly tokens: number;
  /** performance.now() after which the request gets a 429. */
  readonly deadline: number;
}

interface Waiter {
  readonly ticket: AdmissionTicket;
  readonly wake: (why: WakeReason) => void;
}

export class AdmissionQueue {
  private readonly waiters: Waiter[] = []; // by arrival
  private arrivals = 0;

  constructor(readonly maxWaiting: number) {}

  get waiting(): number {
    return this.waiters.length;
  }

  ticket(tokens: number, waitMs: number): AdmissionTicket {
    return { arrival: this.arrivals++, tokens, deadline: performance.now() + waitMs };
  }

  /** Whether a new request (not a re-entry) would find the queue full. */
  full(): boolean {
    return this.waiters.length >= this.maxWaiting;
  }

  wait(ticket: AdmissionTicket, signal: AbortSignal): Promise<WakeReason> {
    if (signal.aborted) return Promise.resolve('aborted');
    const remaining = ticket.deadline - performance.now();
    if (remaining <= 0) return Promise.resolve('timeout');
    return new Promise<WakeReason>((resolve) => {
      const onAbort = (): void => waiter.wake('aborted');
      const timer = setTimeout(() => waiter.wake('timeout'), remaining);
      const waiter: Waiter = {
        ticket,
        wake: (why) => {
          clearTimeout(timer);
          signal.removeEventListener('abort', onAbort);
          const i = this.waiters.indexOf(waiter);
          if (i >= 0) this.waiters.splice(i, 1);
          resolve(why);
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      const at = this.waiters.findIndex((w) => w.ticket.arrival > ticket.arrival);
      this.waiters.splice(at < 0 ? this.waiters.length : at, 0, waiter);
    });
  }

  /** Wakes the waiters these nodes (the compatible live ones) have free pages for; all of them if none is left. */
  offer(nodes: readonly DecodeNode[]): void {
    if (nodes.length === 0) {
      for (const w of [...this.waiters]) w.wake('no-nodes');
      return;
    }
    const free = new Map(nodes.map((n) => [n.nodeId, n.freePages]));
    for (const w of [...this.waiters]) {
      const fit = nodes.map((n) => headroomOf(n, w.ticket.tokens)).find((r) => !r.tooLarge && r.need <= free.get(r.node.nodeId)!);
      if (!fit) continue;
      free.set(fit.node.nodeId, free.get(fit.node.nodeId)! - fit.need);
      w.wake('capacity');
    }
  }
}
