// Pages held for a disaggregated request before its KV arrives. A lease that is neither committed nor
// cancelled by `expiresAt` is dropped so a vanished prefill node can't leak pages.

export interface Reservation {
  readonly requestId: string;
  readonly tokens: number;
  /**
   * Where the prefill's KV goes; becomes the sequence's page table on commit. With choices: choice 0's page
   * table (prompt + max_tokens) first, then the other choices' own pages (choicePages()).
   */
  readonly pages: readonly number[];
  /** n > 1 choices of one prompt of promptTokens (reserveChoices), sharing its full prompt pages. */
  readonly choices?: { readonly n: number; readonly promptTokens: number };
  /** Clock time (ms) at or after which the lease is gone. */
  readonly expiresAt: number;
}

export class LeaseTable {
  // Map keeps insertion order, so expiry is reported in reservation order.
  private readonly leases = new Map<string, Reservation>();

  get size(): number { return this.leases.size; }

  get pageCount(): number {
    let n = 0;
    for (const lease of this.leases.values()) n += lease.pages.length;
    return n;
  }

  has(requestId: string): boolean { return this.leases.has(requestId); }

  get(requestId: string): Reservation | undefined { return this.leases.get(requestId); }

  add(lease: Reservation): void { this.leases.set(lease.requestId, lease); }

  /** Moves a live lease's expiry to `expiresAt` (never earlier); false if there is none. */
  extend(requestId: string, expiresAt: number): boolean {
    const lease = this.leases.get(requestId);
    if (!lease) return false;
    if (expiresAt > lease.expiresAt) this.leases.set(requestId, { ...lease, expiresAt });
    return true;
  }

  /** Removes and returns the lease (undefined if none). */
  take(requestId: string): Reservation | undefined {
    const lease = this.leases.get(requestId);
    this.leases.delete(requestId);
    return lease;
  }

  /** Removes and returns every lease whose time is up at `now`. */
  takeExpired(now: number): Reservation[] {
    const expired = [...this.leases.values()].filter((lease) => now >= lease.expiresAt);
    for (const lease of expired) this.leases.delete(lease.requestId);
    return expired;
  }
}
