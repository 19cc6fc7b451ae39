// The decode node's engine: continuous batching around DecodeModel (nano-vllm's step: schedule → execute →
// update). A request's life here:
//   1. Enter, either
//      a. locally (submit): queued without pages; once admitted, its prompt is prefilled on this GPU into its
//         pages and the first token sampled; or
//      b. disaggregated: reserve() takes its pages under a lease, the prefill node's KV is written into them
//         (writeKv), and admitPrefilled() commits them with the prefill's first token.
//      A request resumed after its node was lost comes either way with the tokens it generated there
//      (replayTokens, replay.ts): the prompt's first token is discarded and those tokens are fed through
//      decode steps, in the batch like any running sequence, before anything new is sent.
//   2. Every loop turn: schedule() admits what fits between steps, one decode step runs for the whole batch,
//      onStepDone() records one token per sequence and retires those done (EOS, stop token, max_tokens).
//      Nothing waits for the slowest sequence: each leaves the batch the step it finishes.
//   3. cancel() ends a request in any state; its pages return to the pool. A cancel that arrives while a
//      step is being built is applied once it is submitted: pages are then handed out again only to work
//      queued behind every step that still writes them (the GPU queue runs in order).
import { Scheduler, SchedulerRejection, Sequence, type FinishReason, type Reservation, type SchedulerStats } from '../scheduler/index.js';
import type { DecodeModel } from './decode-model.js';
import type { PrefillModel } from '@latentwire/gpu/prefill';
import { needsCounts, NO_COUNTS, packLogitRows, packSamplingParams, penaltiesOf, type LogitSettings, type TokenLogprobs } from '@latentwire/gpu/kernels';
import { GrammarCache, GrammarError, type GrammarSpec, type GrammarState, type GrammarVocabulary } from '@latentwire/model';
import { checkReplay, forcedToken, stepRole } from './replay.js';

export type { TokenLogprobs } from '@latentwire/gpu/kernels';

/** Sampling, and the optional logit_bias, penalties and logprobs applied around it on the GPU (LogitSettings). */
export interface SamplingSettings extends LogitSettings {
  /** 0 = greedy. */
  readonly temperature: number;
  /** 0 = off. */
  readonly topK: number;
  /** 1 = off. */
  readonly topP: number;
  readonly seed: number;
  /**
   * Constrained decoding (WireSampling.grammar): every token, the first included, is sampled under the
   * grammar's mask; the first one from the prefill must obey it too (admitPrefilled checks).
   */
  readonly grammar?: { readonly root: unknown; readonly maxTokens?: number };
  /** The sampler's counter for the first generated token (a request resumed after node loss; default 0). */
  readonly counterStart?: number;
}

export interface EngineRequest {
  readonly id: string;
  readonly promptIds: readonly number[];
  readonly maxTokens: number;
  readonly sampling: SamplingSettings;
  readonly stopTokenIds?: readonly number[];
  /** The model's EOS ids (pass [] to ignore EOS). */
  readonly eosTokenIds?: readonly number[];
  /** The prompt's distinct ids, when promptIds holds none (a prefilled request); repetition_penalty needs them. */
  readonly promptTokenSet?: readonly number[];
  /**
   * A request resumed after its node was lost, prefilled again: the tokens it generated there (the tail of its
   * prompt). The penalties count them as output and the grammar's state advances over them before the first
   * token here. Continues exactly only on an exact (f32) cache; replayTokens does on any.
   */
  readonly resumeTokens?: readonly number[];
  /**
   * A request resumed after its node was lost, replayed: its first completion tokens, generated there (not in
   * promptIds; promptIds, maxTokens and sampling are the original request's). They are fed through
   * teacher-forced decode steps (replay.ts) and never sent; the first token sent is the one sampled after them.
   */
  readonly replayTokens?: readonly number[];
}

export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

export interface RequestEvents {
  /** New tokens of the request (the first one included), in order; with their logprobs when the request asked. */
  onTokens(tokens: readonly number[], logprobs?: readonly TokenLogprobs[]): void;
  /** Called once, last. */
  onFinish(reason: FinishReason, usage: Usage, error?: unknown): void;
}

export interface EngineOptions {
  /** Bound on submitted requests waiting for pages or a batch slot. */
  readonly maxWaiting: number;
  /** How long a reservation waits for its KV and commit (ms). */
  readonly leaseMs: number;
  readonly now?: () => number;
  /** The model's tokens as bytes (grammarVocabulary of its folder): needed for requests with a grammar. */
  readonly grammarVocabulary?: GrammarVocabulary;
}

/** What one completed decode step did, for metrics. */
export interface StepReport {
  /** Sequences in the step's batch. */
  readonly batch: number;
  /** From building the step to its tokens read back (ms); with overlap, steps' spans overlap. */
  readonly ms: number;
}

/** A submitted decode step: its batch (in row order) and its tokens, arriving when the GPU is done. */
interface InFlight {
  readonly startedAt: number;
  readonly batch: readonly Sequence[];
  /** Row of each sequence, by object: a finished request's id may already name a new one. */
  readonly index: ReadonlyMap<Sequence, number>;
  readonly tokens: Promise<Uint32Array>;
  readonly logprobs: Promise<(TokenLogprobs | null)[]> | null;
}

interface Live {
  readonly req: EngineRequest;
  readonly events: RequestEvents;
  /** The sequence once it exists in the scheduler. */
  seq?: Sequence;
  /** Its counts row on the GPU (penalties only), from its first decode step to its end. */
  countsRow?: number;
  /** Its grammar's state (constrained decoding), advanced by every token recorded. */
  grammar?: GrammarState;
}

export class DecodeEngine {
  readonly scheduler: Scheduler;
  private readonly live = new Map<string, Live>();
  private loop: Promise<void> | null = null;
  private inStep = false;
  private readonly deferredCancels = new Map<string, { reason: 'cancel' | 'fail'; err?: unknown }>();
  private wakeTimer: NodeJS.Timeout | null = null;
  private stepsRun = 0;
  /** Counts rows not held by a live sequence; at most maxBatch sequences run, so one is always free. */
  private readonly freeCountsRows: number[];
  private readonly grammars: GrammarCache | null;
  /** Told of every completed decode step (the service's metrics); must not throw. */
  onStep: ((s: StepReport) => void) | null = null;

  constructor(readonly model: DecodeModel, private readonly prefill: PrefillModel | null, opts: EngineOptions) {
    this.scheduler = new Scheduler({
      numPages: model.cache.numPages, pageSize: model.opts.pageSize, maxBatch: model.opts.maxBatch,
      maxWaiting: opts.maxWaiting, leaseMs: opts.leaseMs, now: opts.now,
    });
    this.freeCountsRows = Array.from({ length: model.opts.maxBatch }, (_, i) => model.opts.maxBatch - 1 - i);
    this.grammars = opts.grammarVocabulary ? new GrammarCache(opts.grammarVocabulary) : null;
  }

  get steps(): number {
    return this.stepsRun;
  }

  stats(): SchedulerStats {
    return this.scheduler.stats();
  }

  /** Local path: the prompt is prefilled on this node. Throws SchedulerRejection when it cannot be queued. */
  submit(req: EngineRequest, events: RequestEvents): void {
    if (!this.prefill) throw new Error('this engine has no prefill model: use reserve() + admitPrefilled()');
    this.checkRequest(req);
    const grammar = this.grammarOf(req);
    const seq = this.sequenceOf(req, [], 0);
    this.scheduler.add(seq);
    this.live.set(req.id, { req, events, seq, ...(grammar ? { grammar } : {}) });
    this.wake();
  }

  /** Disaggregated path, step 1: pages for prompt + max_tokens, held under a lease until admitPrefilled. */
  reserve(requestId: string, tokens: number): Reservation {
    if (tokens > this.model.opts.maxContext) throw new SchedulerRejection('too-large', `${requestId}: ${tokens} tokens exceed the context of ${this.model.opts.maxContext}`);
    if (this.live.has(requestId)) throw new SchedulerRejection('duplicate-id', `${requestId} is already live`);
    return this.scheduler.reserve(requestId, tokens);
  }

  /** reserve() for n choices of one prompt sharing its pages (Scheduler.reserveChoices); n = 1 is reserve(). */
  reserveChoices(requestId: string, promptTokens: number, maxTokens: number, n: number): Reservation {
    if (n === 1) return this.reserve(requestId, promptTokens + maxTokens);
    const tokens = promptTokens + maxTokens;
    if (tokens > this.model.opts.maxContext) throw new SchedulerRejection('too-large', `${requestId}: ${tokens} tokens exceed the context of ${this.model.opts.maxContext}`);
    if (this.live.has(requestId)) throw new SchedulerRejection('duplicate-id', `${requestId} is already live`);
    return this.scheduler.reserveChoices(requestId, promptTokens, maxTokens, n);
  }

  /**
   * admitPrefilled for the n choices of a reserveChoices() reservation: reqs[i] is choice i (its own id and
   * seed), decoding on from firstTokens[i]. The prompt's full pages are shared; each choice but the first gets
   * a GPU copy of the partial prompt page. A choice its first token already ends finishes at once.
   */
  admitPrefilledChoices(
    reservationId: string, reqs: readonly EngineRequest[], firstTokens: readonly number[], events: readonly RequestEvents[],
    firstLogprobs: readonly (TokenLogprobs | undefined)[],
  ): void {
    for (const req of reqs) this.checkRequest(req);
    if (reqs.some((r) => r.replayTokens?.length)) throw new RangeError(`${reservationId}: replay tokens with n > 1 (each choice resumes on its own)`);
    // each choice runs its own state of the request's grammar, from its own (masked) first token
    const grammars = reqs.map((req, i) => {
      const g = this.grammarOf(req);
      if (g && !g.allows(firstTokens[i]!)) throw new RangeError(`${req.id}: the prefill's first token ${firstTokens[i]} is not allowed by the request's grammar`);
      g?.advance(firstTokens[i]!);
      return g;
    });
    const over: (FinishReason | null)[] = reqs.map((req, i) => {
      const stops = new Set([...(req.eosTokenIds ?? []), ...(req.stopTokenIds ?? [])]);
      return stops.has(firstTokens[i]!) ? 'stop' : req.maxTokens <= 1 ? 'length' : null;
    });
    const seqs = reqs.map((req, i) => (over[i] ? null : this.sequenceOf(req, [firstTokens[i]!], req.promptIds.length)));
    const copies = this.scheduler.commitChoices(reservationId, seqs);
    this.model.cache.copyPages(copies);
    reqs.forEach((req, i) => {
      const seq = seqs[i];
      const grammar = grammars[i];
      if (seq) this.live.set(req.id, { req, events: events[i]!, seq, ...(grammar ? { grammar } : {}) });
    });
    reqs.forEach((req, i) => {
      const lp = req.sampling.logprobs !== undefined && firstLogprobs[i] ? [firstLogprobs[i]!] : undefined;
      events[i]!.onTokens([firstTokens[i]!], lp);
      const reason = over[i];
      if (reason) events[i]!.onFinish(reason, { promptTokens: req.promptIds.length, completionTokens: 1 });
    });
    this.wake();
  }

  /** Disaggregated path, step 2: rows of one page of one layer (already in the cache layout) into the reservation's pages. */
  writeKv(requestId: string, layer: number, pageIndex: number, slot: number, rows: Uint8Array, scales: Uint8Array): void {
    const lease = this.scheduler.reservation(requestId);
    if (!lease) throw new SchedulerRejection('no-reservation', `${requestId}: no live reservation (expired or cancelled?)`);
    const page = lease.pages[pageIndex];
    if (page === undefined) throw new RangeError(`${requestId}: page index ${pageIndex} outside the ${lease.pages.length} reserved pages`);
    this.model.cache.writeRows(layer, page, slot, rows, scales);
  }

  /**
   * Disaggregated path, step 3: every page is in; the sequence joins the batch with the prefill's first token.
   * A first token that already ends the request finishes it at once and frees the pages. A replay
   * (req.replayTokens) discards the prefill's token: it joins with its first replay token, and sends nothing yet.
   */
  admitPrefilled(req: EngineRequest, firstToken: number, events: RequestEvents, firstLogprobs?: TokenLogprobs): void {
    this.checkRequest(req);
    const grammar = this.grammarOf(req);
    const replay = req.replayTokens;
    if (replay?.length) {
      // the prefill's token is discarded: the first output is the lost node's, and the replay starts from it
      const seq = this.sequenceOf(req, [replay[0]!], req.promptIds.length);
      this.scheduler.commit(seq);
      this.live.set(req.id, { req, events, seq, ...(grammar ? { grammar } : {}) });
      this.wake();
      return;
    }
    const usage = { promptTokens: req.promptIds.length, completionTokens: 1 };
    const stops = new Set([...(req.eosTokenIds ?? []), ...(req.stopTokenIds ?? [])]);
    const lp = req.sampling.logprobs !== undefined && firstLogprobs ? [firstLogprobs] : undefined;
    if (grammar) {
      // the prefill sampled under the grammar's first mask: a token outside it means a peer that ignores grammars
      if (!grammar.allows(firstToken)) throw new RangeError(`${req.id}: the prefill's first token ${firstToken} is not allowed by the request's grammar`);
      grammar.advance(firstToken);
    }
    if (stops.has(firstToken) || req.maxTokens <= 1) {
      if (!this.scheduler.cancel(req.id)) throw new SchedulerRejection('no-reservation', `${req.id}: no live reservation`);
      events.onTokens([firstToken], lp);
      events.onFinish(stops.has(firstToken) ? 'stop' : 'length', usage);
      return;
    }
    const seq = this.sequenceOf(req, [firstToken], req.promptIds.length);
    this.scheduler.commit(seq);
    this.live.set(req.id, { req, events, seq, ...(grammar ? { grammar } : {}) });
    events.onTokens([firstToken], lp);
    this.wake();
  }

  /** Ends a request in any state (reservation, waiting, running); false if it is not live. */
  cancel(id: string): boolean {
    return this.end(id, 'cancel');
  }

  fail(id: string, err: unknown): boolean {
    return this.end(id, 'fail', err);
  }

  /** Resolves when no request is running or waiting (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.loop) await this.loop;
  }

  private end(id: string, reason: 'cancel' | 'fail', err?: unknown): boolean {
    const live = this.live.get(id);
    const seq = live?.seq;
    if (this.inStep && seq?.status === 'running') {
      this.deferredCancels.set(id, { reason, err });
      return true;
    }
    const ended = reason === 'cancel' ? this.scheduler.cancel(id) : this.scheduler.fail(id, err);
    if (live) this.finish(live, reason === 'cancel' ? 'cancelled' : 'error', err);
    this.wake();
    return ended;
  }

  private finish(live: Live, reason: FinishReason, err?: unknown): void {
    if (!this.live.delete(live.req.id)) return;
    // a step already submitted may still count into the row: the next owner's setCounts is queued behind it
    if (live.countsRow !== undefined) this.freeCountsRows.push(live.countsRow);
    // the tokens this node generated (a replay's were the lost node's)
    const completion = live.seq ? Math.max(0, live.seq.outputTokens.length - (live.req.replayTokens?.length ?? 0)) : 0;
    live.events.onFinish(reason, { promptTokens: live.req.promptIds.length, completionTokens: completion }, err);
  }

  private checkRequest(req: EngineRequest): void {
    if (this.live.has(req.id)) throw new SchedulerRejection('duplicate-id', `${req.id} is already live`);
    const total = req.promptIds.length + req.maxTokens;
    if (req.promptIds.length < 1) throw new RangeError(`${req.id}: empty prompt`);
    const resume = req.resumeTokens ?? [];
    if (resume.length >= req.promptIds.length) throw new RangeError(`${req.id}: ${resume.length} resume tokens in a prompt of ${req.promptIds.length}`);
    const vocab = this.model.cfg.vocabSize;
    const bad = resume.find((id) => !Number.isInteger(id) || id < 0 || id >= vocab);
    if (bad !== undefined) throw new RangeError(`${req.id}: resume token ${bad} outside the vocabulary [0, ${vocab})`);
    checkReplay(req, vocab);
    if (total > this.model.opts.maxContext) {
      throw new SchedulerRejection('too-large', `${req.id}: prompt ${req.promptIds.length} + max_tokens ${req.maxTokens} exceed the context of ${this.model.opts.maxContext}`);
    }
    packSamplingParams([{ ...req.sampling, counter: 0 }]); // validates the sampling settings
    // and logit_bias, penalties and logprobs
    packLogitRows([req.sampling], [needsCounts(penaltiesOf(req.sampling)) ? 0 : NO_COUNTS], this.model.cfg.vocabSize);
  }

  /**
   * The request's grammar's state before its first token here (fresh, or advanced over a resumed request's
   * tokens), or null; RangeError for one this engine cannot run or resume tokens it does not allow.
   */
  private grammarOf(req: EngineRequest): GrammarState | null {
    if (!req.sampling.grammar) return null;
    if (!this.grammars) throw new RangeError(`${req.id}: a grammar was asked for, but this engine has no grammar vocabulary`);
    try {
      const state = this.grammars.get({ root: req.sampling.grammar.root } as GrammarSpec).start();
      // a replay's too: what its steps sample goes unmasked until the last, which needs the state after them all
      for (const id of req.resumeTokens ?? req.replayTokens ?? []) state.advance(id);
      return state;
    } catch (err) {
      if (err instanceof GrammarError) throw new RangeError(`${req.id}: ${err.message}`);
      throw err;
    }
  }

  private sequenceOf(req: EngineRequest, output: number[], cached: number): Sequence {
    return new Sequence({
      id: req.id, promptLength: req.promptIds.length, maxNewTokens: req.maxTokens, eosTokenIds: req.eosTokenIds,
      stopTokenIds: req.stopTokenIds, outputTokens: output, cachedTokens: cached,
    });
  }

  private wake(): void {
    if (this.loop) return;
    this.loop = this.run().finally(() => {
      this.loop = null;
      // requests that could not start (no pages yet) wait for pages freed by cancels or expired leases
      if (this.scheduler.stats().waiting > 0 && !this.wakeTimer) {
        this.wakeTimer = setTimeout(() => { this.wakeTimer = null; this.wake(); }, 20);
      }
    });
  }

  /**
   * The loop, overlapped as SGLang's overlap scheduler: step n+1 is built and submitted while the GPU runs step
   * n, feeding step n's sampled tokens to step n+1 on the GPU (they are read back behind it). A sequence that
   * step n finishes has then taken one step too many: its extra token is dropped, and the row it wrote lies
   * inside its own reservation (prompt + max_tokens covers the position).
   */
  private async run(): Promise<void> {
    let inflight: InFlight | null = null;
    for (;;) {
      const sched = this.scheduler.schedule();
      for (const seq of sched.admitted) if (seq.cachedTokens === 0) await this.prefillHere(seq);
      // a constrained sequence in the step still running waits for its token: its next mask depends on it
      // (unless that token is a replayed one, known already)
      const waits = (s: Sequence) => {
        const l = this.live.get(s.id);
        return !!l?.grammar && forcedToken(l.req, s.outputTokens.length) === undefined;
      };
      const running = sched.sequences.filter((s) => s.status === 'running' && s.cachedTokens > 0 && !(inflight?.index.has(s) && waits(s)));
      const prev: InFlight | null = inflight;
      inflight = running.length > 0 ? await this.submitStep(running, prev) : null;
      if (prev) await this.completeStep(prev);
      if (!inflight && !prev) return;
    }
  }

  private async submitStep(batch: readonly Sequence[], prev: InFlight | null): Promise<InFlight | null> {
    const startedAt = performance.now();
    this.inStep = true;
    try {
      // a sequence in the step still running feeds that step's token (from the GPU) one position further, or,
      // replaying, its next replay token (from the host)
      const lives = batch.map((s) => this.live.get(s.id)!);
      const roles = batch.map((s, b) => stepRole(lives[b]!.req, s, prev?.index.get(s) ?? -1));
      const submitted = await this.model.submitStep({
        tokens: roles.map((r) => r.token),
        fromPrevious: roles.map((r) => r.fromPrevious),
        positions: roles.map((r) => r.position),
        pageTables: batch.map((s) => s.pageTable),
        sampling: lives.map((l, b) => ({ ...l.req.sampling, counter: (l.req.sampling.counterStart ?? 0) + roles[b]!.sampledIndex })),
        // a replay step's sample is thrown away: no logit work, counts or mask for it
        logitSettings: lives.map((l, b) => (roles[b]!.discarded ? {} : l.req.sampling)),
        countsRows: lives.map((l, b) => (roles[b]!.discarded ? NO_COUNTS : this.countsRowOf(l, batch[b]!))),
        masks: lives.map((l, b) => (roles[b]!.discarded ? null : l.grammar?.mask(l.req.maxTokens - roles[b]!.sampledIndex) ?? null)),
      });
      return { startedAt, batch, index: new Map(batch.map((s, b) => [s, b])), tokens: submitted.tokens, logprobs: submitted.logprobs };
    } catch (err) {
      this.inStep = false;
      for (const s of batch) this.end(s.id, 'fail', err);
      return null;
    } finally {
      this.inStep = false;
      this.applyDeferred();
    }
  }

  /**
   * The sequence's counts row, set up on its first decode step whose sample is kept (its output so far is then
   * all on the CPU: a sequence not in the previous step feeds its token from the host; a replaying one, at its
   * last replay step, has output only its replay tokens); NO_COUNTS without penalties.
   */
  private countsRowOf(live: Live, seq: Sequence): number {
    if (!needsCounts(penaltiesOf(live.req.sampling))) return NO_COUNTS;
    if (live.countsRow === undefined) {
      const row = this.freeCountsRows.pop();
      if (row === undefined) throw new Error('no free counts row (more running sequences than maxBatch?)');
      live.countsRow = row;
      const before = live.req.resumeTokens ?? [];
      const output = live.req.replayTokens?.length ? live.req.replayTokens : before.length > 0 ? [...before, ...seq.outputTokens] : seq.outputTokens;
      this.model.setCounts(row, live.req.promptTokenSet ?? live.req.promptIds, output);
    }
    return live.countsRow;
  }

  private async completeStep(step: InFlight): Promise<void> {
    let tokens: Uint32Array;
    let logprobs: (TokenLogprobs | null)[] | null;
    try {
      tokens = await step.tokens;
      logprobs = step.logprobs ? await step.logprobs : null;
    } catch (err) {
      for (const s of step.batch) if (this.live.get(s.id)?.seq === s) this.end(s.id, 'fail', err);
      return;
    }
    this.stepsRun++;
    this.onStep?.({ batch: step.batch.length, ms: performance.now() - step.startedAt });
    // only sequences still running as these objects: one that ended meanwhile may have a successor of its id
    const current = step.batch.flatMap((s, b) => (s.status === 'running' && this.live.get(s.id)?.seq === s ? [{ seqId: s.id, token: tokens[b]!, logprobs: logprobs?.[b] ?? undefined }] : []));
    this.record(current);
  }

  /** Local path: prompt → pages, first token sampled on the GPU. */
  private async prefillHere(seq: Sequence): Promise<void> {
    const live = this.live.get(seq.id);
    if (live?.seq !== seq) return; // ended (and its id maybe reused) since it was admitted
    this.inStep = true;
    try {
      const mask = live.grammar?.mask(live.req.maxTokens);
      const resumed = live.req.resumeTokens?.length ? { outputIds: live.req.resumeTokens } : {};
      // a replay's first token is its first replay token (record), not a sample
      const sample = live.req.replayTokens?.length ? {} : { sample: { ...live.req.sampling, counter: live.req.sampling.counterStart ?? 0, ...(mask ? { mask } : {}), ...resumed } };
      const out = await this.prefill!.prefill(live.req.promptIds, sample);
      try {
        await this.model.writePrompt(out.latent, out.tokens, seq.pageTable);
      } finally {
        out.release();
      }
      const token = out.token ?? 0; // none sampled for a replay: record() puts its first replay token there
      this.inStep = false;
      this.record([{ seqId: seq.id, token, logprobs: out.logprobs ?? undefined }]);
    } catch (err) {
      this.inStep = false;
      this.end(seq.id, 'fail', err);
    } finally {
      this.inStep = false;
      this.applyDeferred();
    }
  }

  /**
   * Records one token per sequence and sends it, except where the sequence replays: its output there is its
   * replay token whatever was sampled, and nothing is sent (its grammar went over it at admission).
   */
  private record(results: readonly { seqId: string; token: number; logprobs?: TokenLogprobs | undefined }[]): void {
    const live = results.flatMap((r) => {
      if (this.deferredCancels.has(r.seqId)) return [];
      const l = this.live.get(r.seqId);
      const forced = l?.seq ? forcedToken(l.req, l.seq.outputTokens.length) : undefined;
      if (forced !== undefined) return [{ seqId: r.seqId, token: forced, logprobs: undefined, replayed: true }];
      return this.advanceGrammar(r.seqId, r.token) ? [{ ...r, replayed: false }] : [];
    });
    const finished = new Set(this.scheduler.onStepDone(live));
    for (const r of live) {
      const l = this.live.get(r.seqId);
      if (!l) continue;
      if (!r.replayed) l.events.onTokens([r.token], r.logprobs ? [r.logprobs] : undefined);
      if (l.seq && finished.has(l.seq)) this.finish(l, l.seq.finishReason!);
    }
  }

  /** Advances the sequence's grammar (if any) by its token; a token outside the grammar fails the request. */
  private advanceGrammar(id: string, token: number): boolean {
    const g = this.live.get(id)?.grammar;
    if (!g) return true;
    try {
      g.advance(token);
      return true;
    } catch (err) {
      this.end(id, 'fail', err);
      return false;
    }
  }

  private applyDeferred(): void {
    for (const [id, d] of this.deferredCancels) {
      this.deferredCancels.delete(id);
      this.end(id, d.reason, d.err);
    }
  }
}
