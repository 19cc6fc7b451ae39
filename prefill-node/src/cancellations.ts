// Cancelled request ids, from the gateway's prefill-cancel broadcast. An active job for the id is aborted at
// once (its KV sender stops before its next chunk); the id is remembered for `ttlMs` so a job picked up
// later (queued, or a retry waiting out its backoff) is skipped. The memory is bounded: at most `maxIds`
// ids, the oldest forgotten first.
import { RequestGoneError } from './errors.js';

export interface CancellationsOptions {
  /** How long a cancelled id is remembered (ms). */
  readonly ttlMs: number;
  readonly maxIds: number;
  /** Clock (ms), for tests. */
  readonly now?: () => number;
}

export interface TrackedRequest {
  /** Aborted (reason: RequestGoneError) when the request is cancelled, or at once if it already was. */
  readonly signal: AbortSignal;
  untrack(): void;
}

export class Cancellations {
  /** id → expiry (ms); Map order is insertion order, which is expiry order since the TTL is constant. */
  private readonly cancelled = new Map<string, number>();
  private readonly active = new Map<string, Set<AbortController>>();
  private readonly now: () => number;

  constructor(private readonly options: CancellationsOptions) {
    if (!(options.ttlMs > 0) || !Number.isInteger(options.maxIds) || options.maxIds < 1) {
      throw new RangeError(`Cancellations: ttlMs ${options.ttlMs} must be > 0 and maxIds ${options.maxIds} a positive integer`);
    }
    this.now = options.now ?? Date.now;
  }

  /** Records a cancel; returns how many active jobs it aborted. */
  cancel(requestId: string, source: string): number {
    this.prune();
    this.cancelled.delete(requestId); // re-insert so it moves to the end (newest)
    this.cancelled.set(requestId, this.now() + this.options.ttlMs);
    while (this.cancelled.size > this.options.maxIds) this.cancelled.delete(this.cancelled.keys().next().value!);
    const controllers = this.active.get(requestId);
    for (const c of controllers ?? []) c.abort(gone(requestId, source));
    return controllers?.size ?? 0;
  }

  isCancelled(requestId: string): boolean {
    const expiry = this.cancelled.get(requestId);
    return expiry !== undefined && expiry > this.now();
  }

  /** Watches `requestId` while a job works on it; call untrack() when the job ends. */
  track(requestId: string, source: string): TrackedRequest {
    const controller = new AbortController();
    if (this.isCancelled(requestId)) controller.abort(gone(requestId, source));
    let set = this.active.get(requestId);
    if (!set) this.active.set(requestId, (set = new Set()));
    set.add(controller);
    return {
      signal: controller.signal,
      untrack: () => {
        set.delete(controller);
        if (set.size === 0 && this.active.get(requestId) === set) this.active.delete(requestId);
      },
    };
  }

  /** Ids remembered now (expired ones may linger until the next cancel). */
  get size(): number {
    return this.cancelled.size;
  }

  private prune(): void {
    const now = this.now();
    for (const [id, expiry] of this.cancelled) {
      if (expiry > now) break;
      this.cancelled.delete(id);
    }
  }
}

function gone(requestId: string, source: string): RequestGoneError {
  return new RequestGoneError(requestId, 'cancelled', source, `request ${requestId} was cancelled (${source})`);
}
