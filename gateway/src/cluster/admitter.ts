// Admission of one request: find a decode node that reserves its pages, or wait, or refuse.
//   0. the prefill side first: no prefill worker on the queue → 503 at once; a prefill backlog this prompt
//      would wait behind longer than PREFILL_QUEUE_MAX_WAIT_MS (prefill-backlog.ts) → 429 with Retry-After;
//   1. rank the live, not draining nodes serving the model by headroom (headroom.ts), each counting the
//      pages of reserves still in flight to it;
//   2. skip a node the request could never fit (context limit, whole cache) or that has no room now by
//      its latest figure; ask the others in order with a reserve request (RESERVE_TIMEOUT_MS each): the
//      first grant wins, a refusal or a silent node moves on to the next;
//   3. no node at all → 503; every node too small for the request → 400 context_length_exceeded;
//   4. otherwise wait in the admission queue until a heartbeat shows room, then go back to 1; a full
//      queue, or no grant within ADMISSION_WAIT_MS of the first try → 429 with Retry-After.
// A grant that arrives after the client left is handed back with a cancel on the node's control subject.
import type { ReserveReply } from '@latentwire/protocol';
import type { Logger } from 'pino';
import { BackendRejection, type GenerationRequest } from '../http/backend.js';
import type { AdmissionQueue, AdmissionTicket } from './admission-queue.js';
import type { DecodeNode, DecodeRegistry } from './decode-registry.js';
import { headroomOf, rankByHeadroom } from './headroom.js';
import type { Canceller } from './canceller.js';
import type { ClusterMetrics } from './metrics.js';
import type { PrefillBacklog } from './prefill-backlog.js';
import { requestReservation, type ReserveCall } from './reserve-client.js';

export interface Grant {
  readonly node: DecodeNode;
  readonly reply: ReserveReply;
  /** The granting reserve request's round trip (ms). */
  readonly reserveMs: number;
}

export interface AdmitterOptions {
  readonly registry: DecodeRegistry;
  readonly admission: AdmissionQueue;
  readonly reserve: ReserveCall;
  readonly fingerprint: string;
  /** The model's EOS ids: the reserve carries them apart from the request's other stop ids. */
  readonly eosTokenIds: readonly number[];
  readonly admissionWaitMs: number;
  readonly metrics: ClusterMetrics;
  readonly logger: Logger;
  readonly backlog: PrefillBacklog;
  /** 0 = no limit. */
  readonly prefillQueueMaxWaitMs: number;
  readonly canceller: Canceller;
  /** Sent with every reserve: the decode node drops the request if this gateway goes silent. */
  readonly gatewayId: string;
}

/** No prefill worker: looked for again this many times, this far apart, before the 503 (so 503 within ~0.3 s). */
const NO_WORKER_RECHECKS = 5;
const NO_WORKER_RECHECK_MS = 50;

type Round = Grant | 'too-large' | 'busy' | 'no-nodes';

/** The reserve's generation fields: the request's stop ids hold the model's EOS ids unless ignore_eos. */
function generationOf(req: GenerationRequest, modelEos: readonly number[]) {
  const eos = new Set(modelEos);
  return {
    requestId: req.requestId, promptTokens: req.promptIds.length, maxTokens: req.maxTokens, sampling: req.sampling,
    stopTokenIds: req.stopTokenIds.filter((id) => !eos.has(id)), eosTokenIds: req.stopTokenIds.filter((id) => eos.has(id)),
    ...(req.promptTokenSet ? { promptTokenSet: req.promptTokenSet } : {}),
    ...((req.n ?? 1) > 1 ? { n: req.n } : {}), // choices share the prompt's pages on the node
    ...(req.resumeTokens?.length ? { resumeTokens: req.resumeTokens } : {}), // a resume prefilled again: the node rebuilds penalties and grammar
    ...(req.replayTokens?.length ? { replayTokens: req.replayTokens } : {}), // a resume replayed: the node feeds them through decode steps
  };
}

export class Admitter {
  constructor(private readonly o: AdmitterOptions) {}

  /** The grant, or undefined when `signal` aborted first. Throws BackendRejection (429, 400, 503). */
  async admit(req: GenerationRequest, signal: AbortSignal): Promise<Grant | undefined> {
    // n > 1: the prompt once and every choice's completion (routing's estimate; the node counts exact pages)
    const tokens = req.promptIds.length + req.maxTokens * (req.n ?? 1);
    await this.checkPrefill(req);
    let ticket: AdmissionTicket | undefined;
    for (;;) {
      const round = await this.round(req, tokens, signal);
      if (signal.aborted) {
        if (typeof round === 'object') this.giveBack(req.requestId, round.node.nodeId);
        this.o.metrics.admissions.inc({ outcome: 'aborted' });
        return undefined;
      }
      if (typeof round === 'object') {
        this.o.metrics.admissions.inc({ outcome: 'granted' });
        return round;
      }
      if (round === 'no-nodes') throw this.refuse('no_nodes', new BackendRejection(503, 'No decode node is serving this model right now.', 'service_unavailable'));
      if (round === 'too-large') throw this.refuse('too_large', this.tooLarge(req));
      if (!ticket) {
        if (this.o.admission.full()) {
          const msg = `Too many requests are waiting for KV cache space (${this.o.admission.maxWaiting}); please retry later.`;
          throw this.refuse('queue_full', new BackendRejection(429, msg, 'rate_limit_exceeded', this.retryAfterSeconds()));
        }
        ticket = this.o.admission.ticket(tokens, this.o.admissionWaitMs);
      }
      const why = await this.o.admission.wait(ticket, signal);
      if (why === 'aborted') {
        this.o.metrics.admissions.inc({ outcome: 'aborted' });
        return undefined;
      }
      if (why === 'timeout') {
        const msg = `No decode node had KV cache space for this request within ${this.o.admissionWaitMs} ms; please retry later.`;
        throw this.refuse('wait_timeout', new BackendRejection(429, msg, 'rate_limit_exceeded', this.retryAfterSeconds()));
      }
    }
  }

  /** 503 without a prefill worker; 429 when the prompt would wait too long behind the prefill backlog. */
  private async checkPrefill(req: GenerationRequest): Promise<void> {
    const { backlog, prefillQueueMaxWaitMs: maxWait } = this.o;
    let workers = await backlog.workers(); // undefined: Redis did not answer; enqueue will tell
    // A worker that is (re)connecting to Redis this instant is not counted yet: look again briefly first.
    for (let i = 0; workers === 0 && i < NO_WORKER_RECHECKS; i++) {
      await new Promise((r) => setTimeout(r, NO_WORKER_RECHECK_MS));
      workers = await backlog.workers();
    }
    if (workers === 0) {
      throw this.refuse('no_prefill', new BackendRejection(503, 'No prefill worker is serving right now; please retry later.', 'service_unavailable', 1));
    }
    const waitMs = backlog.waitMs(req.promptIds.length, workers ?? 1);
    if (maxWait > 0 && waitMs !== undefined && waitMs > maxWait) {
      const msg = `The prefill queue is too long right now (about ${Math.ceil(waitMs / 1000)} s of prompts ahead, limit ${Math.ceil(maxWait / 1000)} s); please retry later.`;
      throw this.refuse('prefill_backlog', new BackendRejection(429, msg, 'rate_limit_exceeded', Math.max(1, Math.ceil((waitMs - maxWait) / 1000))));
    }
    // counted from here (not from the enqueue), so a burst sees itself; NatsBackend.generate takes it out
    backlog.enqueued(req.requestId, req.promptIds.length);
  }

  private async round(req: GenerationRequest, tokens: number, signal: AbortSignal): Promise<Round> {
    const { registry, fingerprint, reserve, metrics, logger } = this.o;
    if (registry.compatible(fingerprint).length > 0 && registry.routable(fingerprint).length === 0) return 'busy'; // all draining
    const nodes = registry.routable(fingerprint);
    if (nodes.length === 0) return 'no-nodes';
    let tooLarge = 0;
    const perChoice = req.promptIds.length + req.maxTokens;
    for (const r of rankByHeadroom(nodes, tokens)) {
      // n > 1: the context bounds each choice (prompt + max_tokens); the cache holds all of them or never will
      const never = (req.n ?? 1) > 1 ? headroomOf(r.node, perChoice).tooLarge || r.need > r.node.heartbeat.totalPages : r.tooLarge;
      if (never) tooLarge++;
      if (never || !r.fits || signal.aborted) continue;
      const sent = performance.now();
      const settle = registry.reserving(r.node.nodeId, r.need);
      const out = await requestReservation(reserve, r.node, { ...generationOf(req, this.o.eosTokenIds), fingerprint, gatewayId: this.o.gatewayId })
        .finally(settle);
      metrics.reserves.inc({ result: out.ok ? 'ok' : out.reason });
      if (out.reply) registry.noteFreePages(r.node.nodeId, out.reply.freePages);
      if (out.ok) return { node: r.node, reply: out.reply, reserveMs: performance.now() - sent };
      if (out.reason === 'too-large') tooLarge++;
      // Full nodes refuse in normal operation; anything else hints at a broken or misconfigured node.
      const expected = out.reason === 'no-pages' || out.reason === 'queue-full' || out.reason === 'too-large';
      logger[expected ? 'debug' : 'warn']({ requestId: req.requestId, nodeId: r.node.nodeId, reason: out.reason, err: out.error }, 'reservation refused');
    }
    return tooLarge === nodes.length ? 'too-large' : 'busy';
  }

  private giveBack(requestId: string, nodeId: string): void {
    void this.o.canceller.cancel(nodeId, requestId, 'client-disconnected');
  }

  private tooLarge(req: GenerationRequest): BackendRejection {
    const max = this.o.registry.maxRequestTokens(this.o.fingerprint);
    const p = req.promptIds.length;
    const n = req.n ?? 1;
    if (n > 1 && (max === undefined || p + req.maxTokens <= max)) {
      return new BackendRejection(400, `This request's ${n} choices need KV cache for ${p + n * req.maxTokens} tokens (${p} in the prompt, shared, ` +
        `and ${req.maxTokens} per choice), more than any decode node holds. Please reduce n, best_of or max_tokens.`, 'context_length_exceeded');
    }
    const msg =
      `This model's maximum context length is ${max ?? '(unknown)'} tokens. However, you requested ${p + req.maxTokens} tokens ` +
      `(${p} in the prompt, ${req.maxTokens} in the completion). Please reduce the length of the prompt or the completion.`;
    return new BackendRejection(400, msg, 'context_length_exceeded');
  }

  /** A client told to retry after about one admission wait. */
  private retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.o.admissionWaitMs / 1000));
  }

  private refuse(outcome: 'no_nodes' | 'no_prefill' | 'prefill_backlog' | 'too_large' | 'queue_full' | 'wait_timeout', err: BackendRejection): BackendRejection {
    this.o.metrics.admissions.inc({ outcome });
    return err;
  }
}
