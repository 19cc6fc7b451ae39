// What the prefill side can take, for admission:
//   - workers: BullMQ's count of workers connected on the queue (a Redis CLIENT LIST), cached briefly so a
//     burst costs one look-up; 0 means no prefill worker at all (the request gets 503 at once);
//   - backlog: prompt tokens of this gateway's jobs from enqueue to their first tokens message;
//   - throughput: prompt tokens per ms of one worker, an exponential average over the prefill timings the
//     first tokens messages carry (forward pass + KV transfer not hidden by it).
// The wait a new prompt would see is (backlog + its tokens) ÷ (throughput × workers). A job measured while
// its worker ran another at the same time looks slower than the worker is, so the estimate errs long: a
// request may be refused a little early, never accepted into a wait much longer than the limit. The backlog
// is this gateway's own: several gateways each see their own share of the queue.
import type { Queue } from 'bullmq';

const ALPHA = 0.3;
/** How long a positive worker count is trusted (ms); a zero is looked up again after ZERO_TTL_MS. */
const COUNT_TTL_MS = 1000;
const ZERO_TTL_MS = 40;
/** A look-up Redis does not answer within this counts as unknown (Redis down: the enqueue reports it). */
const LOOKUP_MS = 250;

export class PrefillBacklog {
  private readonly jobs = new Map<string, number>();
  private tokens = 0;
  /** Prompt tokens per ms per worker; undefined until a first timing. */
  private rate: number | undefined;
  private cached: { readonly count: number; readonly at: number } | undefined;
  private lookup: Promise<number | undefined> | undefined;

  constructor(private readonly queue: Pick<Queue, 'getWorkersCount'>) {}

  get queuedTokens(): number {
    return this.tokens;
  }

  get tokensPerSecond(): number | undefined {
    return this.rate === undefined ? undefined : this.rate * 1000;
  }

  /** Workers on the queue now (cached); undefined when Redis did not answer. */
  async workers(): Promise<number | undefined> {
    const c = this.cached;
    if (c && performance.now() - c.at < (c.count > 0 ? COUNT_TTL_MS : ZERO_TTL_MS)) return c.count;
    let timer: NodeJS.Timeout | undefined;
    this.lookup ??= Promise.race([
      this.queue.getWorkersCount().then(
        (count) => {
          this.cached = { count, at: performance.now() };
          return count;
        },
        () => undefined,
      ),
      new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), LOOKUP_MS))),
    ]).finally(() => {
      clearTimeout(timer);
      this.lookup = undefined;
    });
    return this.lookup;
  }

  /** Estimated wait (ms) for a new prompt of `promptTokens` behind the backlog; undefined before any measurement. */
  waitMs(promptTokens: number, workers: number): number | undefined {
    if (this.rate === undefined) return undefined;
    return (this.tokens + promptTokens) / (this.rate * Math.max(1, workers));
  }

  enqueued(requestId: string, promptTokens: number): void {
    if (this.jobs.has(requestId)) return;
    this.jobs.set(requestId, promptTokens);
    this.tokens += promptTokens;
  }

  /** The job's first tokens came (with the prefill's timing when it carried one), or the request ended. */
  done(requestId: string, timing?: { readonly prefillMs: number; readonly kvTransferMs: number }): void {
    const n = this.jobs.get(requestId);
    if (n === undefined) return;
    this.jobs.delete(requestId);
    this.tokens -= n;
    if (!timing) return;
    const r = n / Math.max(1, timing.prefillMs + timing.kvTransferMs);
    this.rate = this.rate === undefined ? r : this.rate + ALPHA * (r - this.rate);
  }
}
