// Continuous-batching scheduler of the decode node. Lifecycle of a request:
//  1. Enter. add(seq) queues a sequence without pages (the engine prefills it here). Disaggregated path:
//     reserve(id, tokens) takes the pages at once under a lease, the prefill node's KV is written into them,
//     and commit(seq) hands them to the sequence; a lease not committed in time expires and its pages return.
//  2. Admit. schedule() starts committed sequences (they hold pages and only need a slot), then waiting ones
//     oldest first, each getting every page its prompt + max_tokens needs, while MAX_BATCH allows.
//  3. Step. The engine runs every sequence of the batch on its pending tokens [cachedTokens, totalTokens)
//     and reports one sampled token per sequence to onStepDone.
//  4. Retire. onStepDone finishes sequences on EOS / stop token / max_tokens; cancel and fail finish one in
//     any state. Retiring frees its pages exactly once; the next schedule() reuses its slot and pages.
//
// Choices (n > 1 completions of one prompt): reserveChoices() leases the prompt's pages once plus each choice's
// own, the prefill's KV is written once (into choice 0's page table, the lease's first pages), and
// commitChoices() turns the lease into n sequences. The prompt's full pages are shared, not copied: every choice's
// page table references them (PageAllocator refcounts) and a page returns when the last choice holding it ends.
// The last, partially filled prompt page (when promptTokens % pageSize ≠ 0) is copy-on-write: each choice
// appends its own tokens into it, so choices after the first get a fresh page that must receive a copy of it
// (commitChoices returns the copies; the engine does them on the GPU before any step writes the pages). A
// prompt of whole pages shares every prompt page and generated tokens start on fresh pages.
//
// Admission without head-of-line blocking: a waiting sequence that doesn't fit the free pages is passed over
// so smaller ones behind it can start. The oldest passed-over one counts the sequences started past it; at
// maxHeadBypass the waiting queue stops until it fits (0 = strict FIFO). Running sequences hold every page
// they will need, so they always finish and free them: unless reservations keep taking the freed pages, the
// head eventually fits. reserve() and committed sequences don't queue behind it: a reservation is granted or
// rejected at once ('no-pages' is the disaggregated path's back-pressure) and a committed one holds its pages.

import { SchedulerRejection } from './errors.js';
import { LeaseTable, type Reservation } from './leases.js';
import { PageAllocator } from './page-allocator.js';
import type { ScheduledBatch, SchedulerOptions, SchedulerStats, StepResult } from './scheduler-types.js';
import { pagesFor } from '@latentwire/protocol';
import type { FinishReason, Sequence } from './sequence.js';

export class Scheduler {
  private readonly allocator: PageAllocator;
  private readonly now: () => number;
  private readonly maxHeadBypass: number;
  private readonly waiting: Sequence[] = [];
  private readonly ready: Sequence[] = [];
  private readonly running = new Map<string, Sequence>();
  private readonly live = new Map<string, Sequence>(); // waiting, ready and running, by id
  private readonly leases = new LeaseTable();
  private readonly bypassed = new WeakMap<Sequence, number>();

  constructor(private readonly opts: SchedulerOptions) {
    for (const key of ['pageSize', 'maxBatch'] as const) {
      if (!Number.isInteger(opts[key]) || opts[key] < 1) throw new RangeError(`${key} must be ≥ 1, got ${opts[key]}`);
    }
    if (!Number.isInteger(opts.maxWaiting) || opts.maxWaiting < 0) throw new RangeError(`bad maxWaiting ${opts.maxWaiting}`);
    if (!(opts.leaseMs > 0)) throw new RangeError(`leaseMs must be > 0, got ${opts.leaseMs}`);
    this.allocator = new PageAllocator(opts.numPages);
    this.now = opts.now ?? Date.now;
    this.maxHeadBypass = opts.maxHeadBypass ?? 4;
  }

  /** Queues a fresh sequence. Rejects (SchedulerRejection) a duplicate id, one the pool can never hold, or a full queue. */
  add(seq: Sequence): void {
    if (seq.status !== 'waiting' || seq.pageTable.length > 0 || seq.cachedTokens > 0) {
      throw new Error(`${seq.id}: add() takes a fresh sequence with no pages or cached KV`);
    }
    this.checkAdmissible(seq.id, seq.reservedTokens);
    if (this.waiting.length >= this.opts.maxWaiting) {
      throw new SchedulerRejection('queue-full', `waiting queue is full (${this.opts.maxWaiting})`);
    }
    this.waiting.push(seq);
    this.live.set(seq.id, seq);
  }

  /** Takes pages for `tokens` (prompt + max_tokens) now, under a lease of leaseMs; all or nothing. */
  reserve(requestId: string, tokens: number): Reservation {
    this.expireLeases();
    this.checkAdmissible(requestId, tokens);
    const pages = this.allocator.allocate(pagesFor(this.opts, tokens));
    if (!pages) throw new SchedulerRejection('no-pages', `${requestId}: ${this.allocator.freeCount} pages free, not enough`);
    const lease = { requestId, tokens, pages, expiresAt: this.now() + this.opts.leaseMs };
    this.leases.add(lease);
    return lease;
  }

  /**
   * Gives a live reservation another leaseMs from now (the gateway renews the requests whose prefill is still
   * queued or running); false if it has none (expired, cancelled or committed).
   */
  renew(requestId: string): boolean {
    this.expireLeases();
    return this.leases.extend(requestId, this.now() + this.opts.leaseMs);
  }

  /**
   * reserve() for n choices of one prompt, each of prompt + maxTokens: shared + n · own pages, where shared =
   * the prompt's full pages and own = the rest of one choice's table (choicePages). n = 1 is reserve().
   */
  reserveChoices(requestId: string, promptTokens: number, maxTokens: number, n: number): Reservation {
    if (n === 1) return this.reserve(requestId, promptTokens + maxTokens);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`${requestId}: choices must be a positive integer, got ${n}`);
    this.expireLeases();
    const { shared, own } = choicePages(this.opts.pageSize, promptTokens, maxTokens);
    const total = shared + n * own;
    this.checkAdmissible(requestId, promptTokens + maxTokens);
    if (total > this.allocator.numPages) {
      throw new SchedulerRejection('too-large', `${requestId}: ${n} choices need ${total} pages; the pool has ${this.allocator.numPages}`);
    }
    const pages = this.allocator.allocate(total);
    if (!pages) throw new SchedulerRejection('no-pages', `${requestId}: ${this.allocator.freeCount} pages free, ${total} needed for ${n} choices`);
    const lease = { requestId, tokens: promptTokens + maxTokens, pages, expiresAt: this.now() + this.opts.leaseMs, choices: { n, promptTokens } };
    this.leases.add(lease);
    return lease;
  }

  /**
   * Turns the live choices reservation `requestId` into the sequences of its choices (seqs[i]: choice i, or
   * null for a choice already over, e.g. its first token was a stop token: its pages return). Every sequence
   * gets the shared prompt pages (one reference each) and its own; returns the page copies the engine must
   * do before their sequences step: the partial prompt page into the fresh page of each choice but the first
   * live one (copy-on-write). Throws like commit(), changing nothing.
   */
  commitChoices(requestId: string, seqs: readonly (Sequence | null)[]): { from: number; to: number }[] {
    this.expireLeases();
    const lease = this.leases.get(requestId);
    if (!lease) throw new SchedulerRejection('no-reservation', `${requestId}: no live reservation (expired or cancelled?)`);
    const choices = lease.choices ?? { n: 1, promptTokens: lease.tokens };
    if (seqs.length !== choices.n) throw new RangeError(`${requestId}: ${seqs.length} sequences for ${choices.n} reserved choices`);
    const live = seqs.filter((s): s is Sequence => s !== null);
    for (const seq of live) {
      if (seq.status !== 'waiting' || seq.pageTable.length > 0) throw new Error(`${seq.id}: commitChoices() takes fresh sequences`);
      if (seq.promptLength !== choices.promptTokens) throw new RangeError(`${seq.id}: prompt of ${seq.promptLength}, ${choices.promptTokens} reserved`);
      if (this.live.has(seq.id) || this.leases.has(seq.id)) throw new SchedulerRejection('duplicate-id', `${seq.id} is already live`);
    }
    const maxTokens = lease.tokens - choices.promptTokens;
    const { shared, own } = choicePages(this.opts.pageSize, choices.promptTokens, maxTokens);
    for (const seq of live) {
      if (pagesFor(this.opts, seq.reservedTokens) > shared + own) {
        throw new SchedulerRejection('reservation-too-small', `${seq.id}: needs ${pagesFor(this.opts, seq.reservedTokens)} pages, reserved ${shared + own}`);
      }
    }
    this.leases.take(requestId);
    const prompt = lease.pages.slice(0, shared);
    const ownOf = (i: number) => (i === 0 ? lease.pages.slice(shared, shared + own) : lease.pages.slice(shared + i * own, shared + (i + 1) * own));
    const partial = choices.promptTokens % this.opts.pageSize !== 0;
    const copies: { from: number; to: number }[] = [];
    const unused: number[] = [];
    // the first live choice takes choice 0's own pages, which hold the partial prompt page as it arrived
    let tables = 0;
    let original: readonly number[] | null = null;
    for (let i = 0; i < seqs.length; i++) {
      const seq = seqs[i];
      if (!seq) continue;
      const mine = tables === 0 ? ownOf(0) : ownOf(tables);
      if (tables === 0) original = mine;
      else if (partial) copies.push({ from: original![0]!, to: mine[0]! });
      tables++;
      seq.assignPages([...prompt, ...mine]);
      this.ready.push(seq);
      this.live.set(seq.id, seq);
    }
    for (let i = Math.max(tables, 1); i < choices.n; i++) unused.push(...ownOf(i));
    if (tables === 0) unused.push(...ownOf(0), ...prompt);
    else if (tables > 1) this.allocator.share(Array.from({ length: tables - 1 }, () => prompt).flat());
    this.allocator.free(unused);
    return copies;
  }

  /** Turns the live reservation named seq.id into `seq`'s page table (surplus pages return); it then waits for a slot. */
  commit(seq: Sequence): void {
    this.expireLeases();
    const lease = this.leases.get(seq.id);
    if (!lease) throw new SchedulerRejection('no-reservation', `${seq.id}: no live reservation (expired or cancelled?)`);
    if (seq.status !== 'waiting' || seq.pageTable.length > 0) throw new Error(`${seq.id}: commit() takes a fresh sequence`);
    const need = pagesFor(this.opts, seq.reservedTokens);
    if (need > lease.pages.length) {
      throw new SchedulerRejection('reservation-too-small', `${seq.id}: needs ${need} pages, reserved ${lease.pages.length}`);
    }
    this.leases.take(seq.id);
    this.allocator.free(lease.pages.slice(need));
    seq.assignPages(lease.pages.slice(0, need));
    this.ready.push(seq);
    this.live.set(seq.id, seq);
  }

  /** Starts what fits (see the admission rule above) and returns the next step's batch. */
  schedule(): ScheduledBatch {
    this.expireLeases();
    const admitted: Sequence[] = [];
    while (this.ready.length > 0 && this.running.size < this.opts.maxBatch) admitted.push(this.start(this.ready.shift()!));
    let head: Sequence | undefined; // the oldest waiting sequence that didn't fit
    for (let i = 0; i < this.waiting.length && this.running.size < this.opts.maxBatch; ) {
      if (head && (this.bypassed.get(head) ?? 0) >= this.maxHeadBypass) break;
      const seq = this.waiting[i]!;
      const pages = this.allocator.allocate(pagesFor(this.opts, seq.reservedTokens));
      if (!pages) {
        head ??= seq;
        i++;
        continue;
      }
      if (head) this.bypassed.set(head, (this.bypassed.get(head) ?? 0) + 1);
      this.waiting.splice(i, 1);
      seq.assignPages(pages);
      admitted.push(this.start(seq));
    }
    return { sequences: [...this.running.values()], admitted };
  }

  /**
   * Records one step's tokens and retires the sequences they finish; returns those. Results for sequences
   * no longer running (cancelled or failed mid-step) are ignored: their pages are already back.
   */
  onStepDone(results: readonly StepResult[]): Sequence[] {
    const ids = new Set(results.map((r) => r.seqId));
    if (ids.size !== results.length) throw new Error('onStepDone: more than one token for a sequence in one step');
    const finished: Sequence[] = [];
    for (const { seqId, token } of results) {
      const seq = this.running.get(seqId);
      const reason = seq?.acceptToken(token);
      if (seq && reason) {
        this.retire(seq, reason);
        finished.push(seq);
      }
    }
    return finished;
  }

  /** Ends a reservation or a waiting / ready / running sequence; false if there is none (already ended). */
  cancel(id: string): boolean {
    return this.end(id, 'cancelled');
  }

  /** Like cancel, but the sequence finishes with reason 'error' and keeps `err`. */
  fail(id: string, err: unknown): boolean {
    return this.end(id, 'error', err);
  }

  /** Drops reservations whose lease is up, returning their pages; gives their ids. Called by the other entry points. */
  expireLeases(): string[] {
    const expired = this.leases.takeExpired(this.now());
    for (const lease of expired) this.allocator.free(lease.pages);
    return expired.map((lease) => lease.requestId);
  }

  /** The live (unexpired, uncommitted) reservation of a request: where its incoming KV goes. */
  reservation(requestId: string): Reservation | undefined {
    this.expireLeases();
    return this.leases.get(requestId);
  }

  /** A live (waiting, ready or running) sequence. */
  sequence(id: string): Sequence | undefined {
    return this.live.get(id);
  }

  /** For heartbeats; expires due leases first so freePages is current. */
  stats(): SchedulerStats {
    this.expireLeases();
    return {
      totalPages: this.allocator.numPages,
      freePages: this.allocator.freeCount,
      running: this.running.size,
      waiting: this.waiting.length,
      ready: this.ready.length,
      reserved: this.leases.size,
      reservedPages: this.leases.pageCount,
    };
  }

  /** Page references held now (tests: a shared page has one per choice holding it). */
  pageRefs(id: number): number {
    return this.allocator.refCount(id);
  }

  private checkAdmissible(id: string, tokens: number): void {
    if (this.live.has(id) || this.leases.has(id)) throw new SchedulerRejection('duplicate-id', `${id} is already live`);
    if (!Number.isInteger(tokens) || tokens < 1) throw new RangeError(`${id}: tokens must be a positive integer, got ${tokens}`);
    const need = pagesFor(this.opts, tokens);
    if (need > this.allocator.numPages) {
      throw new SchedulerRejection('too-large', `${id}: ${tokens} tokens need ${need} pages; the pool has ${this.allocator.numPages}`);
    }
  }

  private start(seq: Sequence): Sequence {
    seq.start();
    this.running.set(seq.id, seq);
    return seq;
  }

  private end(id: string, reason: FinishReason, err?: unknown): boolean {
    const lease = this.leases.take(id);
    if (lease) this.allocator.free(lease.pages);
    const seq = this.live.get(id);
    if (seq) this.retire(seq, reason, err);
    return lease !== undefined || seq !== undefined;
  }

  private retire(seq: Sequence, reason: FinishReason, err?: unknown): void {
    this.allocator.free(seq.releasePages());
    this.running.delete(seq.id);
    for (const queue of [this.waiting, this.ready]) {
      const i = queue.indexOf(seq);
      if (i >= 0) queue.splice(i, 1);
    }
    this.live.delete(seq.id);
    seq.finish(reason, err);
  }
}

/**
 * A choice's pages when n choices share one prompt: `shared` full prompt pages, referenced by every choice, and
 * `own` pages each (the partial prompt page's copy, if any, and room for its maxTokens).
 */
export function choicePages(pageSize: number, promptTokens: number, maxTokens: number): { shared: number; own: number } {
  const shared = Math.floor(promptTokens / pageSize);
  return { shared, own: pagesFor({ pageSize }, promptTokens + maxTokens) - shared };
}
