// The disaggregated requests between reserve and prefill-done: what the reserve promised (prompt size and
// the completion's generation settings) and which KV has arrived. The engine owns the pages and the lease; an entry here whose
// engine reservation is gone (lease expired, cancelled) is dropped the next time it is looked at or swept.
// Recently cancelled ids are remembered (a bounded set) so late kv-chunks get 'cancelled'; an expired lease
// or an id never reserved gets 'no-reservation'.
import type { Reserve } from '@latentwire/protocol';
import type { Reservation } from '../scheduler/index.js';
import { KvCoverage } from './kv-coverage.js';

export interface Handoff {
  /** The reserve, whose generation settings (sampling, max tokens, stop ids) the sequence decodes with. */
  readonly reserve: Reserve;
  readonly coverage: KvCoverage;
}

const REMEMBER_ENDED = 4096;

export class Handoffs {
  private readonly live = new Map<string, Handoff>();
  private readonly ended = new Set<string>();

  /**
   * @param reservation the engine's live reservation of a request, if any
   * @param onExpired called for a handoff whose reservation ran out before its prefill-done
   */
  constructor(
    private readonly layers: number,
    private readonly reservation: (requestId: string) => Reservation | undefined,
    private readonly onExpired: (requestId: string) => void = () => {},
  ) {}

  get size(): number {
    return this.live.size;
  }

  ids(): string[] {
    return [...this.live.keys()];
  }

  add(reserve: Reserve): Handoff {
    const h = { reserve, coverage: new KvCoverage(this.layers, reserve.promptTokens) };
    this.live.set(reserve.requestId, h);
    this.ended.delete(reserve.requestId);
    return h;
  }

  /** The handoff and its engine reservation, both live; else why not. */
  get(requestId: string): { handoff: Handoff; reservation: Reservation } | 'cancelled' | 'no-reservation' {
    const handoff = this.live.get(requestId);
    const reservation = this.reservation(requestId);
    if (handoff && reservation) return { handoff, reservation };
    if (handoff) this.expire(requestId);
    return this.ended.has(requestId) ? 'cancelled' : 'no-reservation';
  }

  /** Forgets a handoff (committed, refused, cancelled); `cancelled` remembers the id for late chunks. */
  end(requestId: string, cancelled = true): void {
    this.live.delete(requestId);
    if (!cancelled) return;
    this.ended.add(requestId);
    if (this.ended.size > REMEMBER_ENDED) this.ended.delete(this.ended.values().next().value!);
  }

  /** Drops handoffs whose lease expired (called on every heartbeat). */
  sweep(): void {
    for (const id of [...this.live.keys()]) if (!this.reservation(id)) this.expire(id);
  }

  private expire(requestId: string): void {
    this.end(requestId, false);
    this.onExpired(requestId);
  }
}
