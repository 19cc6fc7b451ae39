// A fixed-capacity buffer that forgets its oldest entries: the cluster view's memory is bounded however long
// the gateway runs and however busy a node is.
export class Ring<T> {
  private readonly items: (T | undefined)[];
  private next = 0;
  private count = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`Ring capacity ${capacity} must be a positive integer`);
    this.items = new Array<T | undefined>(capacity);
  }

  get size(): number {
    return this.count;
  }

  push(item: T): void {
    this.items[this.next] = item;
    this.next = (this.next + 1) % this.capacity;
    this.count = Math.min(this.count + 1, this.capacity);
  }

  /** Oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    const start = (this.next - this.count + this.capacity) % this.capacity;
    for (let i = 0; i < this.count; i++) out.push(this.items[(start + i) % this.capacity]!);
    return out;
  }

  last(): T | undefined {
    return this.count === 0 ? undefined : this.items[(this.next - 1 + this.capacity) % this.capacity];
  }
}

/** A latency observed at `at` (ms since the epoch), standing for `weight` tokens or requests. */
export interface Observation {
  readonly at: number;
  readonly ms: number;
  readonly weight: number;
}

export interface Percentiles {
  readonly count: number;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
}

/** Weighted nearest-rank percentiles (ms, rounded to 0.01) of the observations at or after `since`. */
export function percentiles(obs: readonly Observation[], since: number): Percentiles {
  const kept = obs.filter((o) => o.at >= since && o.weight > 0).sort((a, b) => a.ms - b.ms);
  const total = kept.reduce((a, o) => a + o.weight, 0);
  const at = (q: number): number | null => {
    if (total === 0) return null;
    const rank = q * total;
    let seen = 0;
    for (const o of kept) {
      seen += o.weight;
      if (seen >= rank) return Math.round(o.ms * 100) / 100;
    }
    return Math.round(kept[kept.length - 1]!.ms * 100) / 100;
  };
  return { count: total, p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}
