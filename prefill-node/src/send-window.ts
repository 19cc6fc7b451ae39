// Flow control for kv-chunk requests: at most `maxInFlightBytes` of sent but not yet acknowledged chunk bytes
// per destination decode node, shared by every job sending to it. A slow node therefore slows only the
// senders waiting on its window; another node's window is untouched. Waiters are served in arrival order
// (no job starves another). A chunk larger than the whole window is let through when nothing else is in
// flight, so the bound is max(maxInFlightBytes, one chunk). A sender that sizes its chunk only once the window
// lets it go (to pack whatever layers arrived meanwhile) acquires max_payload and shrinks the grant to the
// chunk's size.

/** Gives the bytes back (idempotent); shrink(n) keeps only n of them (n <= what is held) and lets waiters in. */
export type Release = (() => void) & { readonly shrink: (bytes: number) => void };

interface Waiter {
  readonly bytes: number;
  readonly grant: () => void;
}

interface Destination {
  inFlight: number;
  readonly waiters: Waiter[];
}

export class SendWindows {
  private readonly destinations = new Map<string, Destination>();

  /**
   * @param onChange called with +bytes when a chunk is let through and -bytes when it is released (a gauge).
   */
  constructor(readonly maxInFlightBytes: number, private readonly onChange: (deltaBytes: number) => void = () => {}) {
    if (!Number.isInteger(maxInFlightBytes) || maxInFlightBytes < 1) throw new RangeError(`maxInFlightBytes ${maxInFlightBytes} must be a positive integer`);
  }

  /**
   * Resolves once `bytes` fit in `nodeId`'s window, holding them until the returned release() (idempotent) is
   * called. Rejects with signal.reason if the signal aborts first (the bytes are then not taken).
   */
  acquire(nodeId: string, bytes: number, signal?: AbortSignal): Promise<Release> {
    if (!Number.isInteger(bytes) || bytes < 1) return Promise.reject(new RangeError(`acquire: bytes ${bytes} must be a positive integer`));
    if (signal?.aborted) return Promise.reject(signal.reason);
    const d = this.destination(nodeId);
    return new Promise<Release>((resolve, reject) => {
      const onAbort = () => {
        const i = d.waiters.indexOf(waiter);
        if (i >= 0) d.waiters.splice(i, 1);
        this.grantWaiting(nodeId, d); // a big waiter leaving may let smaller ones behind it through
        reject(signal!.reason);
      };
      const waiter: Waiter = {
        bytes,
        grant: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve(this.take(nodeId, d, bytes));
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      d.waiters.push(waiter);
      this.grantWaiting(nodeId, d);
    });
  }

  /** Unacknowledged bytes to `nodeId` now. */
  inFlight(nodeId: string): number {
    return this.destinations.get(nodeId)?.inFlight ?? 0;
  }

  private destination(nodeId: string): Destination {
    let d = this.destinations.get(nodeId);
    if (!d) this.destinations.set(nodeId, (d = { inFlight: 0, waiters: [] }));
    return d;
  }

  private take(nodeId: string, d: Destination, bytes: number): Release {
    d.inFlight += bytes;
    this.onChange(bytes);
    let held = bytes;
    const give = (n: number) => {
      held -= n;
      d.inFlight -= n;
      this.onChange(-n);
      this.grantWaiting(nodeId, d);
    };
    const release = () => {
      if (held > 0) give(held);
    };
    const shrink = (n: number) => {
      if (!Number.isInteger(n) || n < 0) throw new RangeError(`shrink: bytes ${n} must be a non-negative integer`);
      if (n < held) give(held - n);
    };
    return Object.assign(release, { shrink });
  }

  /** Lets waiters through in order while the head fits; forgets an idle destination (node ids come and go). */
  private grantWaiting(nodeId: string, d: Destination): void {
    for (;;) {
      const head = d.waiters[0];
      if (!head || (d.inFlight > 0 && d.inFlight + head.bytes > this.maxInFlightBytes)) break;
      d.waiters.shift();
      head.grant();
    }
    if (d.inFlight === 0 && d.waiters.length === 0 && this.destinations.get(nodeId) === d) this.destinations.delete(nodeId);
  }
}
