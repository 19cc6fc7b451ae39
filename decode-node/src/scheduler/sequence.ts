// One request's decode state. The scheduler owns the transitions; the engine reads the page table and the
// pending-token window [cachedTokens, totalTokens) to build each step.
//
// status: waiting → running → finished. A waiting sequence may already hold pages (committed after a
// disaggregated reservation) and may finish straight from waiting (cancel / fail).

export type SequenceStatus = 'waiting' | 'running' | 'finished';
export type FinishReason = 'stop' | 'length' | 'cancelled' | 'error';

export interface SequenceSpec {
  readonly id: string;
  readonly promptLength: number;
  /** max_tokens: output tokens allowed, counting any in `outputTokens`. */
  readonly maxNewTokens: number;
  /** The model's end-of-sequence ids (leave empty for ignore_eos). */
  readonly eosTokenIds?: readonly number[];
  /** The request's stop_token_ids. */
  readonly stopTokenIds?: readonly number[];
  /** Tokens sampled before this node saw the request, e.g. the prefill node's first token. */
  readonly outputTokens?: readonly number[];
  /** Positions whose KV is already in the pages (the prefill node's); default 0 = needs prefill here. */
  readonly cachedTokens?: number;
}

export class Sequence {
  readonly id: string;
  readonly promptLength: number;
  readonly maxNewTokens: number;
  readonly eosTokenIds: ReadonlySet<number>;
  readonly stopTokenIds: ReadonlySet<number>;
  private readonly output: number[];
  private cached: number;
  private pages: number[] = [];
  private state: SequenceStatus = 'waiting';
  private reason: FinishReason | undefined;
  private failure: unknown;

  constructor(spec: SequenceSpec) {
    const { id, promptLength, maxNewTokens } = spec;
    if (!Number.isInteger(promptLength) || promptLength < 1) throw new RangeError(`${id}: promptLength must be ≥ 1, got ${promptLength}`);
    if (!Number.isInteger(maxNewTokens) || maxNewTokens < 1) throw new RangeError(`${id}: maxNewTokens must be ≥ 1, got ${maxNewTokens}`);
    this.id = id;
    this.promptLength = promptLength;
    this.maxNewTokens = maxNewTokens;
    this.eosTokenIds = new Set(spec.eosTokenIds ?? []);
    this.stopTokenIds = new Set(spec.stopTokenIds ?? []);
    this.output = [...(spec.outputTokens ?? [])];
    this.cached = spec.cachedTokens ?? 0;
    // A step must feed at least one token and the sequence must still be allowed to produce one; a request
    // that is already done has nothing to decode and should be answered without scheduling it.
    if (this.output.length >= maxNewTokens || this.output.some((t) => this.isStopToken(t))) {
      throw new RangeError(`${id}: already finished before decoding`);
    }
    if (!Number.isInteger(this.cached) || this.cached < 0 || this.cached >= this.totalTokens) {
      throw new RangeError(`${id}: cachedTokens must be in [0, ${this.totalTokens}), got ${this.cached}`);
    }
  }

  get status(): SequenceStatus { return this.state; }
  get finishReason(): FinishReason | undefined { return this.reason; }
  get error(): unknown { return this.failure; }
  get pageTable(): readonly number[] { return this.pages; }
  get outputTokens(): readonly number[] { return this.output; }
  /** Positions whose KV is in the pages; the next step writes from here. */
  get cachedTokens(): number { return this.cached; }
  get totalTokens(): number { return this.promptLength + this.output.length; }
  /** Tokens the next step feeds: the whole prompt for a fresh sequence, then one a step. */
  get pendingTokens(): number { return this.totalTokens - this.cached; }
  /** Tokens whose KV the pages must hold in the worst case: reserved up front so decode never runs out. */
  get reservedTokens(): number { return this.promptLength + this.maxNewTokens; }

  /** Scheduler only: hand the sequence its whole page table while it waits. */
  assignPages(ids: readonly number[]): void {
    if (this.state !== 'waiting' || this.pages.length > 0) throw new Error(`${this.id}: pages assigned twice`);
    this.pages = [...ids];
  }

  /** Scheduler only: take the page table back (empty afterwards, so pages can't be returned twice). */
  releasePages(): number[] {
    const ids = this.pages;
    this.pages = [];
    return ids;
  }

  /** Scheduler only: waiting → running. */
  start(): void {
    if (this.state !== 'waiting') throw new Error(`${this.id}: cannot start from ${this.state}`);
    this.state = 'running';
  }

  /**
   * Scheduler only: record a step's sampled token (the step wrote KV for all pending positions) and say
   * whether the sequence is done. Stop conditions win over length, like vLLM, and the stop token is kept.
   */
  acceptToken(token: number): FinishReason | null {
    if (this.state !== 'running') throw new Error(`${this.id}: token for a ${this.state} sequence`);
    this.cached = this.totalTokens;
    this.output.push(token);
    if (this.isStopToken(token)) return 'stop';
    return this.output.length >= this.maxNewTokens ? 'length' : null;
  }

  /** Scheduler only: any state but finished → finished. */
  finish(reason: FinishReason, error?: unknown): void {
    if (this.state === 'finished') throw new Error(`${this.id}: finished twice`);
    this.state = 'finished';
    this.reason = reason;
    this.failure = error;
  }

  private isStopToken(token: number): boolean {
    return this.eosTokenIds.has(token) || this.stopTokenIds.has(token);
  }
}
