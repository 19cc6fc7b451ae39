// The production GenerationBackend: one request's life across the cluster.
//   1. admit: a decode node reserves the pages for prompt + max_tokens, or the request waits or is
//      refused (admitter.ts);
//   2. subscribe to the request's tokens subject, and only then queue its prefill job on BullMQ (job id =
//      request id, deadline = now + the longer of the grant's lease and REQUEST_IDLE_TIMEOUT_MS), so no
//      tokens message can be missed; from the grant to the first tokens message the reservation's lease is
//      renewed (lease-renewer.ts), so a job that waits in the prefill queue still finds its pages;
//   3. yield the tokens messages as events, in seq order, until the node's finishReason (token-stream.ts);
//   4. any other end (the client left, the gateway stopped it, a lost message, REQUEST_IDLE_TIMEOUT_MS of
//      silence, the node restarted or failed) cancels it everywhere: the job is removed unless a prefill
//      worker already holds it, an acknowledged cancel goes to the node (retried until acked, canceller.ts)
//      and a cancel to every prefill node.
// close() (the gateway's SIGTERM): new requests get 503, running ones may finish within the caller's timeout.
import type { NatsConnection } from '@nats-io/transport-node';
import {
  MAX_RESUME_TOKENS, cancelMessage, choiceRequestId, choiceSampling, encodeMessage, parsePrefillJob, replayMessage, type CancelReason, type PrefillJob, type PrefillTiming, type WireRejections, type WireSubjects,
} from '@latentwire/protocol';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { BackendRejection, FinishedByGateway, type BackendReadiness, type GenerationBackend, type GenerationEvent, type GenerationRequest } from '../http/backend.js';
import { AdmissionQueue } from './admission-queue.js';
import { mergeChoiceStreams } from './choice-streams.js';
import { Admitter, type Grant } from './admitter.js';
import type { DecodeRegistry } from './decode-registry.js';
import { Canceller } from './canceller.js';
import { DecodeNodeError, PrefillEnqueueError, TokenStreamError } from './errors.js';
import { LeaseRenewer } from './lease-renewer.js';
import { PrefillBacklog } from './prefill-backlog.js';
import { PrefillPresence } from './prefill-presence.js';
import { DEFAULT_RESUME_REPLAY_MAX_TOKENS } from './env.js';
import { ClusterMetrics, type RequestOutcome } from './metrics.js';
import type { PrefillJobs } from './prefill-jobs.js';
import { TokenStream } from './token-stream.js';

export interface NatsBackendSettings {
  readonly reserveTimeoutMs: number;
  readonly admissionQueueMax: number;
  readonly admissionWaitMs: number;
  readonly requestIdleTimeoutMs: number;
  /** 0 = no limit (default 30 000). */
  readonly prefillQueueMaxWaitMs?: number;
  readonly cancelAckTimeoutMs?: number;
  readonly cancelAttempts?: number;
  /** 0 = off (default 10 000). */
  readonly prefillSilenceMs?: number;
  /** Default 1. */
  readonly prefillResumes?: number;
  /** Default DEFAULT_RESUME_REPLAY_MAX_TOKENS. */
  readonly resumeReplayMaxTokens?: number;
}

export interface NatsBackendOptions {
  readonly nc: NatsConnection;
  readonly subjects: WireSubjects;
  readonly registry: DecodeRegistry;
  readonly prefillJobs: PrefillJobs;
  /** The served checkpoint's fingerprint: only nodes serving it get requests. */
  readonly fingerprint: string;
  /** This gateway's id, sent with every reserve (its presence heartbeats carry the same). */
  readonly gatewayId?: string;
  /** The model's EOS ids: the reserve carries them apart from the request's other stop ids. */
  readonly eosTokenIds: readonly number[];
  readonly settings: NatsBackendSettings;
  readonly rejections: WireRejections;
  readonly logger: Logger;
  /** Where the metrics go (default: a registry of this backend's own). */
  readonly metricsRegistry?: Registry;
}

export class NatsBackend implements GenerationBackend {
  readonly metrics: ClusterMetrics;
  private readonly admission: AdmissionQueue;
  private readonly admitter: Admitter;
  readonly backlog: PrefillBacklog;
  private readonly renewer: LeaseRenewer;
  private readonly canceller: Canceller;
  private readonly prefillPresence: PrefillPresence | undefined;
  /** Open token streams by wire request id (to fail those whose prefill worker was lost). */
  private readonly byRequest = new Map<string, TokenStream>();
  /** Open token streams by decode node, to fail them at once when their node restarts. */
  private readonly streams = new Map<string, Set<TokenStream>>();
  private readonly stopListening: () => void;
  private readonly stopResync: () => void;
  /** Requests from admission to the end of their cleanup. */
  private active = 0;
  private onIdle: (() => void) | undefined;
  private closing = false;

  constructor(private readonly o: NatsBackendOptions) {
    const { registry, fingerprint, settings } = o;
    this.admission = new AdmissionQueue(settings.admissionQueueMax);
    this.metrics = new ClusterMetrics(o.metricsRegistry ?? new Registry(), {
      nodes: () => registry.compatible(fingerprint).length,
      waiting: () => this.admission.waiting,
      prefillBacklogTokens: () => this.backlog.queuedTokens,
    });
    this.backlog = new PrefillBacklog(o.prefillJobs.queue);
    this.renewer = new LeaseRenewer(o.nc, o.subjects, o.logger);
    this.canceller = new Canceller({
      nc: o.nc, subjects: o.subjects, rejections: o.rejections, logger: o.logger,
      onOutcome: (outcome) => this.metrics.cancels.inc({ outcome: outcome.replace('-', '_') }),
      ackTimeoutMs: settings.cancelAckTimeoutMs ?? 500, attempts: settings.cancelAttempts ?? 5,
      nodeKnown: (id) => registry.node(id) !== undefined,
    });
    this.admitter = new Admitter({
      registry, fingerprint, eosTokenIds: o.eosTokenIds, admission: this.admission, admissionWaitMs: settings.admissionWaitMs, metrics: this.metrics, logger: o.logger,
      reserve: { nc: o.nc, subjects: o.subjects, rejections: o.rejections, timeoutMs: settings.reserveTimeoutMs },
      backlog: this.backlog, prefillQueueMaxWaitMs: settings.prefillQueueMaxWaitMs ?? 30_000, canceller: this.canceller,
      gatewayId: o.gatewayId ?? 'gateway',
    });
    const silence = settings.prefillSilenceMs ?? 10_000;
    this.prefillPresence = silence > 0 ? new PrefillPresence({
      nc: o.nc, subjects: o.subjects, rejections: o.rejections, silenceMs: silence, logger: o.logger,
      connected: () => registry.connected,
      onLost: (workerId, ids) => {
        for (const id of ids) {
          const s = this.byRequest.get(id);
          // only a request that has no token yet can start over; one decoding does not need its prefill worker
          if (s && !s.started) s.fail(new TokenStreamError('prefill-lost', id, `prefill worker ${workerId} was lost running request ${id}`));
        }
      },
    }) : undefined;
    // messages published while this gateway was away from NATS are lost: every open stream asks for them again
    this.stopResync = registry.onReconnect(() => {
      for (const s of this.byRequest.values()) {
        this.metrics.replays.inc({ why: 'reconnect' });
        s.resync();
      }
    });
    this.stopListening = registry.onNodeEvent((e) => {
      // a node that restarted lost its requests; one whose heartbeats stopped (crashed, partitioned) will not
      // finish them either: fail them now rather than after the idle timeout
      if (e.kind === 'restarted' || e.kind === 'lost') {
        for (const s of this.streams.get(e.nodeId) ?? []) {
          const what = e.kind === 'restarted' ? 'restarted and lost' : 'stopped sending heartbeats with';
          s.fail(new TokenStreamError('node-restarted', s.requestId, `decode node ${e.nodeId} ${what} request ${s.requestId}`));
        }
      }
      // A heartbeat may show freed pages; a lost node may leave none to wait for.
      if (e.kind !== 'restarted') this.admission.offer(registry.routable(fingerprint));
    });
  }

  maxPromptTokens(): number | undefined {
    return this.prefillPresence?.maxPromptTokens();
  }

  maxRequestTokens(): number | undefined {
    return this.o.registry.maxRequestTokens(this.o.fingerprint);
  }

  /**
   * Ready when a decode node serving this model is in the pool (nodes heartbeat only once their pipelines
   * are compiled) and a prefill worker listens on the queue (BullMQ counts the workers connected to Redis).
   */
  async readiness(): Promise<BackendReadiness> {
    const decodeNodes = this.o.registry.routable(this.o.fingerprint).length;
    const prefillWorkers = await this.o.prefillJobs.queue.getWorkersCount().catch(() => 0);
    const natsConnected = !this.o.nc.isClosed();
    return { ready: decodeNodes > 0 && prefillWorkers > 0 && natsConnected && !this.closing, decodeNodes, prefillWorkers, natsConnected };
  }

  async *generate(req: GenerationRequest, signal: AbortSignal, choiceSignals?: readonly AbortSignal[]): AsyncGenerator<GenerationEvent, void, undefined> {
    if (this.closing) throw new BackendRejection(503, 'The gateway is shutting down; please retry.', 'service_unavailable', 1);
    this.active++;
    try {
      const arrived = performance.now();
      if ((req.n ?? 1) > 1) yield* this.generateChoices(req, signal, choiceSignals ?? [], arrived);
      else yield* this.generateOne(req, signal, { arrived });
    } finally {
      this.backlog.done(req.requestId);
      if (--this.active === 0) this.onIdle?.();
    }
  }

  /**
   * One completion, over as many attempts as it takes. A request whose prefill worker was lost, or whose
   * decode node began draining, before its first token starts over under a new wire id (the old one is
   * cancelled everywhere, so the lost job, when BullMQ hands it out again, is skipped), at most
   * PREFILL_RESUMES times. One whose decode node was lost (or restarted) goes on elsewhere from where it
   * stopped (continuation()): the original request again, with the tokens already sent as replayTokens, which
   * the new node feeds through decode steps, so greedy and seeded sampling give the tokens the lost node would
   * have on any cache; past RESUME_REPLAY_MAX_TOKENS, prompt + those tokens prefilled again. `from` continues a choice of an
   * n > 1 request whose node was lost (its attempt number and the tokens it had sent; `count: false`: its
   * request's outcome is counted there). One outcome per request: an attempt that goes on elsewhere is no end.
   */
  private async *generateOne(
    req: GenerationRequest, signal: AbortSignal, from: { arrived?: number; attempt?: number; sent?: number[]; count?: boolean } = {},
  ): AsyncGenerator<GenerationEvent, void, undefined> {
    const sent = from.sent ?? [];
    const count = (o: RequestOutcome) => void (from.count !== false && this.metrics.requests.inc({ outcome: o }));
    for (let attempt = from.attempt ?? 0; ; attempt++) {
      const outcome: AttemptOutcome = {};
      let goesOn = false;
      const wire = attempt === 0 ? req : continuation(req, `${req.requestId}.r${attempt}`, sent, this.replayMax);
      // a request carried over from a lost attempt ends here if it finds no node (counted: it was admitted once)
      const carried = attempt > (from.attempt ?? 0);
      const grant = await this.admitter.admit(wire, signal).catch((err: unknown) => {
        if (carried) count('error');
        throw err;
      });
      if (!grant) {
        if (carried) count('cancelled');
        return;
      }
      if (req.trace) req.trace.nodeId = grant.node.nodeId;
      if (attempt === 0 && from.arrived !== undefined) this.observeAdmission(from.arrived, grant);
      try {
        for await (const event of this.run(wire, grant, signal, outcome)) {
          sent.push(...event.tokens);
          yield event;
        }
        return;
      } catch (err) {
        this.nextAttempt(err, req, wire, sent.length < req.maxTokens && canResume(req, sent, this.replayMax), attempt, signal, sent.length);
        goesOn = true;
      } finally {
        this.backlog.done(wire.requestId);
        // also when the caller stopped reading (the client left, a stop string): run() set the outcome by then
        if (!goesOn) count(outcome.value ?? 'error');
      }
    }
  }

  /**
   * n > 1 choices: one reservation and prefill for all (runChoices). Lost before any token (a prefill worker,
   * a draining node), the whole request starts over; a decode node lost mid-stream leaves choices with
   * different outputs, so each unfinished choice goes on alone (generateOne, with its own seed, seed + i, and
   * the tokens it had sent), and their events merge tagged with their choice.
   */
  private async *generateChoices(
    req: GenerationRequest, signal: AbortSignal, choiceSignals: readonly AbortSignal[], arrived: number,
  ): AsyncGenerator<GenerationEvent, void, undefined> {
    const n = req.n!;
    const progress: ChoiceProgress = { sent: Array.from({ length: n }, () => []), ended: new Set(), stopped: false };
    let attempt = 0;
    for (; ; attempt++) {
      const wire = attempt === 0 ? req : { ...req, requestId: `${req.requestId}.r${attempt}` };
      const grant = await this.admitter.admit(wire, signal).catch((err: unknown) => {
        if (attempt > 0) this.metrics.requests.inc({ outcome: 'error' }); // carried over, and no node for it
        throw err;
      });
      if (!grant) {
        if (attempt > 0) this.metrics.requests.inc({ outcome: 'cancelled' });
        return;
      }
      if (req.trace) req.trace.nodeId = grant.node.nodeId;
      if (attempt === 0) this.observeAdmission(arrived, grant);
      const outcome: AttemptOutcome = {};
      let goesOn = false;
      try {
        yield* this.runChoices(wire, grant, signal, choiceSignals, progress, outcome);
        return;
      } catch (err) {
        const started = progress.sent.some((s) => s.length > 0);
        // started: only a lost node lets the choices go on (each alone); not started: the request starts over
        const open = [...Array(n).keys()].filter((i) => !progress.ended.has(i) && !choiceSignals[i]?.aborted);
        const ok = !started || open.every((i) => progress.sent[i]!.length < req.maxTokens && canResume(req, progress.sent[i]!, this.replayMax));
        this.nextAttempt(err, req, wire, ok, attempt, signal, progress.sent.reduce((a, s) => a + s.length, 0));
        goesOn = true;
        if (started) break;
      } finally {
        this.backlog.done(wire.requestId);
        if (!goesOn) this.metrics.requests.inc({ outcome: outcome.value ?? 'error' });
      }
    }
    const open = [...Array(n).keys()].filter((i) => !progress.ended.has(i) && !choiceSignals[i]?.aborted);
    const { n: _n, ...one } = req;
    const merge = new AbortController(); // the merge's early end (the client left, a choice failed) stops every choice
    let outcome: RequestOutcome = 'cancelled'; // unless the merge ends or fails
    try {
      for await (const event of mergeTagged(merge, open.map((i) => ({
        choice: i,
        events: this.generateOne(
          { ...one, requestId: `${req.requestId}.c${i}`, sampling: choiceSampling(req.sampling, i) },
          AbortSignal.any([signal, merge.signal, ...(choiceSignals[i] ? [choiceSignals[i]!] : [])]),
          { attempt: attempt + 1, sent: progress.sent[i]!, count: false },
        ),
      })))) {
        if (event.finishReason === 'stop') progress.stopped = true;
        yield event;
      }
      const byGateway = choiceSignals.some((cs) => cs.reason instanceof FinishedByGateway && cs.reason.finishReason === 'stop');
      outcome = progress.stopped || byGateway ? 'stop' : 'length';
    } catch (err) {
      outcome = signal.aborted ? 'cancelled' : 'error';
      throw err;
    } finally {
      // the gateway itself ended it (its stop strings, max_tokens): a finish, not a cancel
      if (outcome === 'cancelled' && signal.reason instanceof FinishedByGateway) outcome = progress.stopped ? 'stop' : signal.reason.finishReason;
      this.metrics.requests.inc({ outcome }); // the request's one outcome, however many choices went on alone
    }
  }

  /** RESUME_REPLAY_MAX_TOKENS. */
  private get replayMax(): number {
    return this.o.settings.resumeReplayMaxTokens ?? DEFAULT_RESUME_REPLAY_MAX_TOKENS;
  }

  private observeAdmission(arrived: number, grant: Grant): void {
    const phases = this.metrics.ttftPhases;
    phases.observe({ phase: 'admission' }, Math.max(0, performance.now() - arrived - grant.reserveMs) / 1000);
    phases.observe({ phase: 'reservation' }, grant.reserveMs / 1000);
  }

  /**
   * After a failed attempt: returns when the request goes on (a lost prefill worker, a draining node before
   * the first token, or a lost decode node when `resumable`), counted and logged; throws the error to end
   * it with otherwise (PREFILL_RESUMES attempts spent, the client gone).
   */
  private nextAttempt(err: unknown, req: GenerationRequest, wire: GenerationRequest, resumable: boolean, attempt: number, signal: AbortSignal, tokensSent: number): void {
    const kind = err instanceof TokenStreamError ? err.kind : undefined;
    const nodeLost = kind === 'node-restarted' && resumable;
    if (kind !== 'prefill-lost' && kind !== 'node-draining' && !nodeLost) throw err;
    if (attempt >= (this.o.settings.prefillResumes ?? 1) || wire.requestId.length > 120 || signal.aborted) {
      if (kind === 'node-draining') {
        throw new BackendRejection(503, 'The decode node holding this request is shutting down; please retry.', 'service_unavailable', 1, { cause: err });
      }
      throw err;
    }
    const why = kind === 'prefill-lost' ? 'prefill_lost' : kind === 'node-draining' ? 'node_draining' : 'node_lost';
    this.metrics.resumes.inc({ why });
    this.o.logger.warn({ requestId: req.requestId, attempt: attempt + 1, why, tokensSent },
      why === 'prefill_lost' ? 'prefill worker lost: request re-queued'
        : why === 'node_draining' ? 'decode node draining: request handed to another node'
          : tokensSent === 0 ? 'decode node lost before the first token: request re-routed to another node (prefilled again)'
            : 'decode node lost: request resumed on another node from the tokens already sent');
  }

  /**
   * Call before closing the HTTP server: requests cut off from then on are cancelled with reason 'shutdown'.
   * Resolves once every admitted request has finished its cleanup (cancels sent, job withdrawn), or after
   * `timeoutMs`; then the caller may close the registry, the queue and the NATS connection.
   */
  async close(timeoutMs = 5000): Promise<void> {
    this.closing = true;
    this.stopListening();
    this.stopResync();
    const t0 = performance.now();
    if (this.active > 0) {
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.onIdle = resolve;
        timer = setTimeout(resolve, timeoutMs);
      });
      clearTimeout(timer);
    }
    await this.canceller.settled(Math.max(0, timeoutMs - (performance.now() - t0)));
    this.renewer.close();
    this.prefillPresence?.close();
  }

  /** Stop taking requests (503) from now on; running ones go on. */
  stopAccepting(): void {
    this.closing = true;
  }

  /** Requests admitted and not yet cleaned up. */
  get activeRequests(): number {
    return this.active;
  }

  private async *run(req: GenerationRequest, { node, reply }: Omit<Grant, 'reserveMs'>, signal: AbortSignal, outcome: AttemptOutcome): AsyncGenerator<GenerationEvent, void, undefined> {
    const { requestId } = req;
    const { nodeId } = node;
    const log = this.o.logger.child({ requestId, nodeId });
    const stream = new TokenStream({
      nc: this.o.nc, subjects: this.o.subjects, rejections: this.o.rejections, requestId, nodeId,
      idleTimeoutMs: this.o.settings.requestIdleTimeoutMs, logger: this.o.logger,
      requestReplay: (fromSeq, why) => {
        if (why === 'gap') this.metrics.replays.inc({ why });
        try {
          this.o.nc.publish(this.o.subjects.control(nodeId), encodeMessage(replayMessage({ requestId, fromSeq })));
        } catch (err) {
          log.warn({ err }, 'replay request not sent');
        }
      },
    });
    const streams = this.streams.get(nodeId) ?? new Set();
    this.streams.set(nodeId, streams.add(stream));
    this.byRequest.set(requestId, stream);
    /** Set once the node finished the request itself: nothing to cancel then. */
    let finished: RequestOutcome | undefined;
    let cancelReason: CancelReason = 'client-disconnected'; // also when the gateway ended it (stop string)
    let queued = false;
    let cancelled: Promise<void> | undefined;
    let first = true;
    const cancelOnce = () => (cancelled ??= this.cancelEverywhere(requestId, nodeId, this.closing && cancelReason === 'client-disconnected' ? 'shutdown' : cancelReason, log));
    // the HTTP layer aborts when the client leaves or the gateway ends the request (a stop string): cancel at
    // once, even while this generator waits at a yield for a slow client to take the last frames
    const onAbort = () => {
      if (queued && !finished) void cancelOnce();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      await stream.ready();
      if (signal.aborted) return; // gone already: don't queue a prefill (finally cancels the reservation)
      const job = parsePrefillJob(this.prefillJob(req, { node, reply }));
      const enqueued = performance.now();
      this.renewer.hold(requestId, nodeId, reply.leaseMs);
      await this.o.prefillJobs.enqueue(job, reply.leaseMs);
      queued = true;
      for await (const event of stream.events(signal)) {
        if (first) {
          first = false;
          this.renewer.release(requestId); // committed on the node: no lease any more
          this.backlog.done(requestId, stream.firstTiming);
          this.observeFirstToken(performance.now() - enqueued, stream.firstTiming);
        }
        if (event.finishReason) finished = event.finishReason;
        yield event;
        if (finished) return;
      }
    } catch (err) {
      if (err instanceof DecodeNodeError) finished = err.finishReason === 'error' ? 'error' : 'cancelled';
      const f = this.attemptFailed(err, { requestId, nodeId, queued, first, log });
      ({ cancelReason } = f);
      throw f.error;
    } finally {
      this.renewer.release(requestId);
      this.backlog.done(requestId);
      signal.removeEventListener('abort', onAbort);
      this.byRequest.delete(requestId);
      streams.delete(stream);
      if (streams.size === 0) this.streams.delete(nodeId);
      stream.close();
      // the gateway's own stop (stop string, stop id, max_tokens) aborts the signal too: that is a finish
      if (!finished && signal.reason instanceof FinishedByGateway) finished = signal.reason.finishReason;
      // counted by the caller, unless the request goes on elsewhere (a lost prefill worker or node)
      outcome.value = finished ?? (cancelReason === 'client-disconnected' ? 'cancelled' : 'error');
      if (finished !== 'stop' && finished !== 'length') await cancelOnce();
    }
  }

  /**
   * run() for n > 1 choices: one reservation and one prefill job for the prompt; choice i's tokens come on
   * its own subject (choiceRequestId) and go out tagged with `choice`. A choice whose signal aborts (the
   * gateway finished it) is cancelled on the node at once; the others go on. Any failure ends them all.
   */
  private async *runChoices(
    req: GenerationRequest, { node, reply }: Omit<Grant, 'reserveMs'>, signal: AbortSignal, choiceSignals: readonly AbortSignal[], progress: ChoiceProgress,
    outcome: AttemptOutcome,
  ): AsyncGenerator<GenerationEvent, void, undefined> {
    const { requestId } = req;
    const { nodeId } = node;
    const n = req.n!;
    const log = this.o.logger.child({ requestId, nodeId, n });
    const ids = Array.from({ length: n }, (_, i) => choiceRequestId(requestId, i));
    const open = (id: string, idleTimeoutMs: number) => new TokenStream({
      nc: this.o.nc, subjects: this.o.subjects, rejections: this.o.rejections, requestId: id, nodeId, idleTimeoutMs, logger: this.o.logger,
      requestReplay: (fromSeq, why) => {
        if (why === 'gap') this.metrics.replays.inc({ why });
        try {
          this.o.nc.publish(this.o.subjects.control(nodeId), encodeMessage(replayMessage({ requestId: id, fromSeq })));
        } catch (err) {
          log.warn({ err }, 'replay request not sent');
        }
      },
    });
    // the request's own subject only carries failures before decoding: no idle limit there (the choices have theirs)
    const all = [open(requestId, 2 ** 31 - 1), ...ids.map((id) => open(id, this.o.settings.requestIdleTimeoutMs))];
    const streams = this.streams.get(nodeId) ?? new Set();
    this.streams.set(nodeId, streams);
    for (const s of all) {
      streams.add(s);
      this.byRequest.set(s.requestId, s); // the request's own: a lost prefill worker fails it; every one: replays after a reconnect
    }
    const ended = progress.ended; // choices finished by the node or by the gateway
    let stopped = false; // some choice finished with 'stop'
    let queued = false;
    let failed = false;
    let first = true;
    let cancelReason: CancelReason = 'client-disconnected';
    let cancelled: Promise<void> | undefined;
    const cancelAll = () => (cancelled ??= this.cancelEverywhere(requestId, nodeId, this.closing && cancelReason === 'client-disconnected' ? 'shutdown' : cancelReason, log,
      ids.filter((_, i) => !ended.has(i))));
    const onAbort = () => {
      if (queued && ended.size < n) void cancelAll();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    // a choice the gateway finished (stop string, stop id) leaves the batch at once; the others go on
    const onChoiceAbort = choiceSignals.map((cs, i) => {
      const f = () => {
        if (!queued || ended.has(i) || signal.aborted) return;
        if (cs.reason instanceof FinishedByGateway) {
          ended.add(i);
          if (cs.reason.finishReason === 'stop') stopped = true;
        }
        void this.canceller.cancel(nodeId, ids[i]!, 'client-disconnected');
      };
      cs.addEventListener('abort', f, { once: true });
      return f;
    });
    try {
      await all[0]!.ready();
      if (signal.aborted) return;
      const job = parsePrefillJob({ ...this.prefillJob(req, { node, reply }), n });
      const enqueued = performance.now();
      this.renewer.hold(requestId, nodeId, reply.leaseMs);
      await this.o.prefillJobs.enqueue(job, reply.leaseMs);
      queued = true;
      for await (const event of mergeChoiceStreams(all[0]!, all.slice(1), signal, choiceSignals)) {
        if (first) {
          first = false;
          all[0]!.started = true; // decoding: a prefill worker lost from now on no longer matters
          this.renewer.release(requestId); // committed on the node: no lease any more
          const timing = all[1 + event.choice]!.firstTiming;
          this.backlog.done(requestId, timing);
          this.observeFirstToken(performance.now() - enqueued, timing);
        }
        if (event.finishReason) ended.add(event.choice);
        if (event.finishReason === 'stop') stopped = true;
        progress.sent[event.choice]!.push(...event.tokens); // a lost node: each choice goes on from its own tokens
        yield event;
      }
      choiceSignals.forEach((cs, i) => {
        if (cs.reason instanceof FinishedByGateway) {
          ended.add(i);
          if (cs.reason.finishReason === 'stop') stopped = true;
        }
      });
    } catch (err) {
      failed = true;
      const f = this.attemptFailed(err, { requestId, nodeId, queued, first, log });
      ({ cancelReason } = f);
      throw f.error;
    } finally {
      this.renewer.release(requestId);
      this.backlog.done(requestId);
      signal.removeEventListener('abort', onAbort);
      choiceSignals.forEach((cs, i) => cs.removeEventListener('abort', onChoiceAbort[i]!));
      for (const s of all) {
        this.byRequest.delete(s.requestId);
        streams.delete(s);
        s.close();
      }
      if (streams.size === 0) this.streams.delete(nodeId);
      const done = ended.size === n && !failed;
      // one outcome per request: 'stop' if any choice stopped, 'length' if all ran to max_tokens (counted by the
      // caller unless the request goes on elsewhere)
      if (stopped) progress.stopped = true;
      outcome.value = done ? (stopped ? 'stop' : 'length') : failed ? 'error' : 'cancelled';
      if (!done) await cancelAll();
    }
  }

  /** The TTFT phases from enqueue on: split by the prefill's timing when the first tokens message has it. */
  private observeFirstToken(sinceEnqueueMs: number, timing: PrefillTiming | undefined): void {
    const phases = this.metrics.ttftPhases;
    if (!timing) {
      phases.observe({ phase: 'unsplit' }, sinceEnqueueMs / 1000);
      return;
    }
    phases.observe({ phase: 'queue' }, timing.queueMs / 1000);
    phases.observe({ phase: 'prefill' }, timing.prefillMs / 1000);
    phases.observe({ phase: 'kv_transfer' }, timing.kvTransferMs / 1000);
    const rest = sinceEnqueueMs - timing.queueMs - timing.prefillMs - timing.kvTransferMs;
    phases.observe({ phase: 'first_token' }, Math.max(0, rest) / 1000);
  }

  private prefillJob(req: GenerationRequest, { node, reply }: Omit<Grant, 'reserveMs'>): PrefillJob {
    return {
      v: 2,
      requestId: req.requestId,
      decodeNodeId: node.nodeId,
      promptIds: req.promptIds,
      sampling: req.sampling,
      layoutKey: node.heartbeat.layoutKey,
      fingerprint: this.o.fingerprint,
      // the lease is renewed while the job waits; past the idle timeout the gateway gives up on it anyway
      deadline: Date.now() + Math.max(reply.leaseMs, this.o.settings.requestIdleTimeoutMs),
      ...(req.promptLogprobs !== undefined ? { promptLogprobs: req.promptLogprobs } : {}),
      ...(req.resumeTokens?.length ? { resumeTokens: req.resumeTokens } : {}),
    };
  }

  /**
   * What a failed attempt of run() or runChoices() means: the reason its cancel carries and the error to throw
   * (a draining node that dropped the request before its first token: 'node-draining', which generate()
   * hands on to another node, as a lost prefill worker's 'prefill-lost').
   */
  private attemptFailed(err: unknown, a: { requestId: string; nodeId: string; queued: boolean; first: boolean; log: Logger }): {
    readonly cancelReason: CancelReason; readonly error: unknown;
  } {
    const lostPrefill = err instanceof TokenStreamError && err.kind === 'prefill-lost';
    const cancelReason: CancelReason = !a.queued || lostPrefill ? 'prefill-failed'
      : err instanceof TokenStreamError && err.kind === 'idle' ? 'deadline' : 'decode-failed';
    a.log.warn({ err }, 'request failed');
    if (err instanceof DecodeNodeError && a.first && this.o.registry.node(a.nodeId)?.heartbeat.draining) {
      const error = new TokenStreamError('node-draining', a.requestId, `decode node ${a.nodeId} is draining and dropped request ${a.requestId} before its first token`, { cause: err });
      return { cancelReason, error };
    }
    if (err instanceof PrefillEnqueueError) {
      return { cancelReason, error: new BackendRejection(503, 'The prefill queue is unavailable right now.', 'service_unavailable', undefined, { cause: err }) };
    }
    return { cancelReason, error: err };
  }

  /**
   * The node first (it holds the pages; acknowledged, retried in the background), then the queued job, then
   * every prefill node. Never throws.
   */
  private async cancelEverywhere(requestId: string, nodeId: string, reason: CancelReason, log: Logger, choiceIds: readonly string[] = []): Promise<void> {
    const { nc, subjects } = this.o;
    const bytes = encodeMessage(cancelMessage({ requestId, reason }));
    void this.canceller.cancel(nodeId, requestId, reason);
    // the choices of an n > 1 request decode under their own ids (the reservation goes by requestId)
    for (const id of choiceIds) void this.canceller.cancel(nodeId, id, reason);
    // Withdrawn before the broadcast, so no prefill worker can take the job after the broadcast went out.
    const removed = await this.o.prefillJobs.withdraw(requestId);
    try {
      nc.publish(subjects.prefillCancel, bytes);
    } catch (err) {
      log.warn({ err }, 'cancel to the prefill nodes not sent');
    }
    log.info({ reason, jobRemoved: removed }, 'request cancelled');
  }
}

/** What the choices of an n > 1 request got so far: the tokens each sent, and those that ended. */
interface ChoiceProgress {
  readonly sent: number[][];
  readonly ended: Set<number>;
  /** Some choice finished with 'stop'. */
  stopped: boolean;
}

/** How an attempt ended, as run() / runChoices() judged it; counted once the request ends. */
interface AttemptOutcome {
  value?: RequestOutcome;
}

/** Whether the new node needs the tokens already generated: penalties that count them, or a grammar's state. */
function needsHistory(req: GenerationRequest): boolean {
  const s = req.sampling;
  return s.grammar !== undefined || !!s.frequencyPenalty || !!s.presencePenalty;
}

/** Whether a request can go on on another node after `sent` tokens (the replay or resume tokens fit in a reserve). */
function canResume(req: GenerationRequest, sent: readonly number[], replayMax: number): boolean {
  return sent.length <= replayMax || !needsHistory(req) || sent.length <= MAX_RESUME_TOKENS;
}

/**
 * The request that continues `req` after `sent` tokens. Up to `replayMax` of them: the original request
 * with them as replayTokens (the new node prefills the prompt alone and replays them through decode steps,
 * writing their KV as the lost node did, so the output continues exactly on an FP8 cache too). Past it,
 * prefilled again: they join the prompt, the sampler's counter moves on, and, where penalties or a grammar
 * depend on them, they travel as resumeTokens (the grammar's budget is what is left); on a quantized cache
 * their KV then differs from the lost node's, and so may the output. The prompt's logprobs (echo) went out
 * with the first event already.
 */
function continuation(req: GenerationRequest, requestId: string, sent: readonly number[], replayMax: number): GenerationRequest {
  if (sent.length === 0) return { ...req, requestId };
  const { promptLogprobs: _echoed, ...rest } = req;
  if (sent.length <= replayMax) return { ...rest, requestId, replayTokens: [...sent] };
  let promptTokenSet = req.promptTokenSet;
  if (promptTokenSet) {
    promptTokenSet = Uint8Array.from(promptTokenSet); // repetition_penalty: the sent tokens were seen too
    for (const id of sent) promptTokenSet[id >> 3] = promptTokenSet[id >> 3]! | (1 << (id & 7));
  }
  const g = req.sampling.grammar;
  return {
    ...rest, requestId, promptIds: [...req.promptIds, ...sent], maxTokens: req.maxTokens - sent.length,
    sampling: {
      ...req.sampling, counterStart: (req.sampling.counterStart ?? 0) + sent.length,
      ...(g ? { grammar: { ...g, ...(g.maxTokens !== undefined ? { maxTokens: Math.max(1, g.maxTokens - sent.length) } : {}) } } : {}),
    },
    ...(promptTokenSet ? { promptTokenSet } : {}),
    ...(needsHistory(req) ? { resumeTokens: [...sent] } : {}),
  };
}

/** Events of several single-choice generators, tagged with their choice, in arrival order; ends when all have. */
async function* mergeTagged(
  merge: AbortController,
  sources: readonly { readonly choice: number; readonly events: AsyncGenerator<GenerationEvent, void, undefined> }[],
): AsyncGenerator<GenerationEvent, void, undefined> {
  type Pull = { readonly k: number; readonly r: IteratorResult<GenerationEvent, void> };
  const pending = new Map<number, Promise<Pull>>();
  const pull = (k: number): void => {
    const p = sources[k]!.events.next().then((r) => ({ k, r }));
    p.catch(() => undefined); // raced below; one left behind must not go unhandled
    pending.set(k, p);
  };
  try {
    sources.forEach((_, k) => pull(k));
    while (pending.size > 0) {
      const { k, r } = await Promise.race(pending.values());
      pending.delete(k);
      if (r.done) continue;
      yield { ...r.value, choice: sources[k]!.choice };
      pull(k);
    }
  } finally {
    // ended early (the client left, or a choice failed): the others stop at their signal and cancel their work
    merge.abort();
    for (const s of sources) void s.events.return(undefined).catch(() => undefined);
  }
}
