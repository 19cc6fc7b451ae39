// The decode node on NATS. A disaggregated request's life here (subjects: shared/protocol/src/wire/subjects.ts):
//   1. reserve (gateway, request/reply): fingerprint and layout must be this node's; the engine takes pages
//      for prompt + max_tokens under a lease, and a handoff entry starts tracking which KV has arrived.
//   2. kv-chunk (prefill node, request/reply, runs of whole pages of one or more layers): checked against the
//      reservation, its rows copied into the reserved page, its token range marked; the kv-ack is the
//      sender's flow control.
//   3. prefill-done (control, request/reply): every layer must hold exactly tokens [0, promptTokens), else
//      'incomplete' and the pages go back. The sequence then joins the batch with the prefill's first token.
//   4. Each step's tokens go to <p>.tokens.<requestId>, gathered for up to tokenFlushMs a message; the last
//      message carries the finish reason and usage.
//   5. cancel (control) ends the request in any state; prefill-failed drops a reservation; a lease nobody
//      commits expires in the engine. Either way the pages return to the pool.
// A heartbeat (what this node serves, free pages, batch load) goes out at start and every heartbeatMs.
// Reliability:
//   - renew (control) gives the listed reservations another lease: the gateway renews a request's pages
//     while its prefill job waits in the queue, so a slow queue does not expire them;
//   - ping (its own subject) answers pong at once: the gateway's probe before it declares the node lost;
//   - cancel sent as a request is answered with a cancel-ack (the gateway retries until acked);
//   - replay (control) publishes a request's tokens messages again from a seq on: kept while it runs and
//     REPLAY_KEEP_MS after, so a gateway that lost some in a NATS reconnect gets them;
//   - gateway-heartbeats: a reserve names its gateway; when that gateway has been silent gatewaySilenceMs,
//     its requests here are cancelled, so a gateway killed mid-stream leaves no pages held;
//   - drain(): the heartbeat says draining at once and reserves are refused; requests still waiting for KV
//     are failed with a clear error; running sequences finish within the timeout; then stop().
// Refused messages (not msgpack, wrong version or type, bad sizes or checksum) are counted and logged by
// WireRejections and get no reply: a valid reply would need fields of the message that was refused, so the
// requester's timeout reports them. Nothing a peer sends can throw out of a handler.
import { connect } from '@nats-io/transport-node';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import {
  choiceRequestId, logNatsErrors, natsConnectOptions, natsLink, encodeMessage, pongMessage, registerKernelMetrics, reserveReplyMessage, SUBJECT_TYPES, tokensMessage, WireRejections, wireSubjects,
  type MessageOf, type MessageType, type NatsAuth, type PrefillTiming, type WireLogprobs, type WireMessage, type WireSubjects,
} from '@latentwire/protocol';
import type { DecodeEngine } from '../engine/engine.js';
import { nodeIdentity, type NodeIdentity, type ServiceContext } from './context.js';
import { handleCancel, handlePrefillDone, handlePrefillFailed, handleRenew, type TokenStreams } from './control.js';
import { Handoffs } from './handoffs.js';
import { heartbeatOf, modelLabel } from './heartbeat.js';
import { handleKvChunk } from './kv.js';
import { DecodeMetrics } from './metrics.js';
import { handleReserve } from './reserve.js';
import { TokenStream } from './token-stream.js';

export interface DecodeNodeServiceOptions {
  /** A connection (the caller closes it) or server URL(s) (the service connects, and drains it in stop()). */
  readonly nats: NatsConnection | string | readonly string[];
  /** Credentials and TLS when `nats` is a URL (natsConnectOptions). */
  readonly natsAuth?: NatsAuth | undefined;
  readonly nodeId: string;
  /** Subject prefix (default 'lw'). */
  readonly subjectPrefix?: string;
  /** What loadDecodeStack returns, or just its engine and the model folder's fingerprint. */
  readonly stack: { readonly engine: DecodeEngine; readonly folder: { readonly fingerprint: string; readonly dir?: string } };
  readonly heartbeatMs: number;
  readonly tokenFlushMs: number;
  readonly logger: Logger;
  /** Where the service's metrics go; one DecodeNodeService per registry (metric names would clash). */
  readonly registry: Registry;
  /** A gateway silent this long has its requests here cancelled (ms; 0 or absent = never). */
  readonly gatewaySilenceMs?: number;
}

/** Where a drain ended. */
export interface DrainResult {
  /** Requests waiting for their KV at drain start, failed with an error event. */
  readonly failedWaiting: number;
  /** Sequences that had not finished when the timeout came (failed by stop()). */
  readonly cutOff: number;
}

const DRAINING = 'decode node draining (shutting down): the request had not started decoding here; retry it';

const SHUTDOWN = 'decode node shutting down';
/** How long a finished request's messages stay available for replay (ms). */
const REPLAY_KEEP_MS = 30_000;

export class DecodeNodeService {
  readonly subjects: WireSubjects;
  readonly node: NodeIdentity;
  readonly rejections: WireRejections;
  readonly metrics: DecodeMetrics;
  private readonly engine: DecodeEngine;
  private readonly logger: Logger;
  private readonly ctx: ServiceContext;
  private readonly streams = new Map<string, TokenStream>();
  /** Finished streams, kept REPLAY_KEEP_MS for a late replay. */
  private readonly finished = new Map<string, { readonly stream: TokenStream; readonly timer: NodeJS.Timeout }>();
  private nc: NatsConnection | null = null;
  private ownsConnection = false;
  private subs: Subscription[] = [];
  private heartbeat: NodeJS.Timeout | null = null;
  private beat = 0;
  /** Completion tokens sent and the start time, for the heartbeat (the cluster view's throughput and uptime). */
  private readonly counters = { tokensOut: 0, startedAt: Date.now() };
  private stopping: Promise<void> | null = null;
  /** Down from a NATS disconnect until the reconnect: the node cannot be reached, so it is not ready. */
  private link: { readonly up: boolean } | null = null;
  private draining = false;
  /** Gateways heard from (gateway-heartbeat or a reserve naming them): performance.now() of the latest. */
  private readonly gateways = new Map<string, number>();
  /** The gateway of each request that named one, until the request is gone here. */
  private readonly owners = new Map<string, string>();
  /** Owned requests of n > 1 choices: their choices' ids (choiceRequestId) are live in their stead once committed. */
  private readonly choicesOf = new Map<string, number>();
  private gatewaySweep: NodeJS.Timeout | null = null;

  constructor(private readonly opts: DecodeNodeServiceOptions) {
    for (const k of ['heartbeatMs', 'tokenFlushMs'] as const) {
      if (!Number.isInteger(opts[k]) || opts[k] < (k === 'heartbeatMs' ? 1 : 0)) throw new RangeError(`DecodeNodeService: ${k} = ${opts[k]}`);
    }
    this.subjects = wireSubjects(opts.subjectPrefix);
    this.subjects.reserve(opts.nodeId); // a node id that can't be a subject token fails here, not at start()
    this.engine = opts.stack.engine;
    this.node = nodeIdentity(opts.nodeId, opts.stack.folder.fingerprint, this.engine, modelLabel(opts.stack.folder.dir));
    this.logger = opts.logger.child({ nodeId: opts.nodeId });
    this.rejections = new WireRejections({ logger: this.logger, registry: opts.registry });
    this.metrics = new DecodeMetrics(opts.registry, this.engine);
    const profiler = this.engine.model.gpu.profiler;
    if (profiler) registerKernelMetrics(opts.registry, profiler); // GPU_PROFILE=1
    const handoffs = new Handoffs(this.node.layers, (id) => this.engine.scheduler.reservation(id),
      (id) => this.failRequest(id, 'the prefill\'s KV did not arrive within the reservation lease'));
    this.ctx = {
      engine: this.engine, node: this.node, handoffs, metrics: this.metrics, logger: this.logger,
      failRequest: (id, detail) => this.failRequest(id, detail),
    };
  }

  /** drain() was called: nothing new is taken. */
  get isDraining(): boolean {
    return this.draining;
  }

  /** Started, not stopping, and NATS connected right now (for /ready). */
  get connected(): boolean {
    return this.link?.up === true && this.stopping === null && this.nc !== null && !this.nc.isClosed();
  }

  /** Connects if given URLs, subscribes to this node's subjects and starts the heartbeat. */
  async start(): Promise<void> {
    if (this.nc) throw new Error('DecodeNodeService: already started');
    const { nats } = this.opts;
    if (typeof nats === 'string' || Array.isArray(nats)) {
      this.nc = await connect({ servers: typeof nats === 'string' ? nats : [...nats], name: this.node.nodeId, ...natsConnectOptions(this.opts.natsAuth) });
      this.ownsConnection = true;
      logNatsErrors(this.nc, this.logger); // e.g. a publish its NATS user may not make
    } else {
      this.nc = nats as NatsConnection;
    }
    const s = this.subjects, id = this.node.nodeId;
    const streams: TokenStreams = { open: (r, timing, promptLogprobs) => this.openStream(r, timing, promptLogprobs), discard: (r) => void this.streams.delete(r) };
    this.subs = [
      this.serve(s.reserve(id), SUBJECT_TYPES.reserve, (m) => {
        if (this.draining) {
          this.metrics.refuse('reserve', 'queue-full');
          return reserveReplyMessage({ requestId: m.requestId, ok: false, reason: 'queue-full', pages: 0, freePages: this.engine.stats().freePages, leaseMs: 0 });
        }
        const reply = handleReserve(this.ctx, m);
        if (reply.ok && m.gatewayId !== undefined && (this.opts.gatewaySilenceMs ?? 0) > 0) { // only swept when on
          this.owners.set(m.requestId, m.gatewayId);
          if ((m.n ?? 1) > 1) this.choicesOf.set(m.requestId, m.n!); // its choices decode under their own ids
          if (!this.gateways.has(m.gatewayId)) this.gateways.set(m.gatewayId, performance.now());
        }
        return reply;
      }),
      this.serve(s.kv(id), SUBJECT_TYPES.kv, (m) => handleKvChunk(this.ctx, m)),
      this.serve(s.control(id), SUBJECT_TYPES.control, (m) => {
        switch (m.type) {
          case 'prefill-done': return handlePrefillDone(this.ctx, m, streams);
          case 'prefill-failed': return handlePrefillFailed(this.ctx, m);
          case 'cancel': return handleCancel(this.ctx, m);
          case 'renew': return handleRenew(this.ctx, m);
          case 'replay': {
            const n = (this.streams.get(m.requestId) ?? this.finished.get(m.requestId)?.stream)?.replay(m.fromSeq) ?? 0;
            this.logger.info({ requestId: m.requestId, fromSeq: m.fromSeq, messages: n }, 'tokens replayed');
            return;
          }
        }
      }),
      this.serve(s.ping(id), SUBJECT_TYPES.ping, (m) => pongMessage({ nodeId: id, nonce: m.nonce, draining: this.draining || undefined })),
      this.serve(s.gatewayHeartbeat, SUBJECT_TYPES.gatewayHeartbeat, (m) => void this.gateways.set(m.gatewayId, performance.now())),
    ];
    await this.nc.flush(); // the server has the subscriptions before anyone learns of this node
    this.link = natsLink(this.nc);
    this.sendHeartbeat();
    this.heartbeat = setInterval(() => this.sendHeartbeat(), this.opts.heartbeatMs);
    this.heartbeat.unref();
    const silence = this.opts.gatewaySilenceMs ?? 0;
    if (silence > 0) {
      const every = Math.max(20, silence / 4);
      let last = performance.now();
      this.gatewaySweep = setInterval(() => {
        // A blocked event loop (a long GPU step) reads no heartbeats: silence is counted in responsive time
        // only, so every gateway gets back the time the loop was stalled.
        const now = performance.now();
        const stalled = Math.max(0, now - last - every);
        last = now;
        if (stalled > 0) for (const [g, seen] of this.gateways) this.gateways.set(g, seen + stalled);
        // Nor while this node's own NATS link is down: nobody's heartbeats arrive then.
        if (this.link?.up !== true) {
          for (const g of this.gateways.keys()) this.gateways.set(g, now);
          return;
        }
        this.sweepGateways(silence);
      }, every);
      this.gatewaySweep.unref();
    }
    this.logger.info({ subjects: s.prefix, layoutKey: this.node.layoutKey, fingerprint: this.node.fingerprint.slice(0, 12) }, 'decode node serving');
  }

  /**
   * Stops heartbeats, drains the subscriptions (messages already received are answered), cancels reservations
   * and fails decoding requests (their last tokens message says why), waits for the engine to idle, and
   * drains the connection if the service opened it. The GPU is the caller's to release afterwards.
   */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  /**
   * Graceful scale-down: announces draining at once (a heartbeat now, and every pong), refuses reserves from
   * then on, fails the requests still waiting for their KV with an error event naming the drain, and waits up
   * to `timeoutMs` for the running sequences to finish; then stop() (which fails what is left).
   */
  async drain(timeoutMs: number): Promise<DrainResult> {
    if (this.draining || this.stopping) {
      await this.stop();
      return { failedWaiting: 0, cutOff: 0 };
    }
    this.draining = true;
    if (this.nc) this.sendHeartbeat();
    let failedWaiting = 0;
    for (const id of this.ctx.handoffs.ids()) {
      this.engine.cancel(id);
      this.ctx.handoffs.end(id);
      this.ctx.failRequest(id, DRAINING);
      failedWaiting++;
    }
    const t0 = performance.now();
    this.logger.info({ failedWaiting, running: this.streams.size, timeoutMs }, 'draining');
    const busy = () => {
      const st = this.engine.stats();
      return this.streams.size + st.running + st.waiting + st.ready;
    };
    while (busy() > 0 && performance.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 20));
    const cutOff = this.streams.size;
    if (cutOff > 0) this.logger.warn({ cutOff, timeoutMs }, 'drain timed out: failing the sequences left');
    await this.stop();
    this.logger.info({ failedWaiting, cutOff, ms: Math.round(performance.now() - t0), ...this.pages() }, 'drained');
    return { failedWaiting, cutOff };
  }

  /** Free and total pages now (a drained node has them all free). */
  pages(): { freePages: number; totalPages: number } {
    const st = this.engine.stats();
    return { freePages: st.freePages, totalPages: st.totalPages };
  }

  /** Cancels the requests of gateways silent for `silenceMs`; forgets owners of requests that are gone. */
  private sweepGateways(silenceMs: number): void {
    const now = performance.now();
    const gone = new Set<string>();
    for (const [g, seen] of this.gateways) if (now - seen > silenceMs) gone.add(g);
    for (const [id, g] of this.owners) {
      const ids = [id, ...Array.from({ length: this.choicesOf.get(id) ?? 0 }, (_, i) => choiceRequestId(id, i))];
      const live = ids.some((x) => this.streams.has(x) || this.engine.scheduler.sequence(x) !== undefined || this.engine.scheduler.reservation(x) !== undefined);
      if (!live) {
        this.owners.delete(id);
        this.choicesOf.delete(id);
        continue;
      }
      if (!gone.has(g)) continue;
      this.owners.delete(id);
      this.choicesOf.delete(id);
      for (const x of ids) this.engine.cancel(x);
      this.ctx.handoffs.end(id);
      this.logger.warn({ requestId: id, gatewayId: g, silenceMs }, 'request cancelled: its gateway went silent');
    }
    for (const g of gone) {
      this.gateways.delete(g);
      this.logger.warn({ gatewayId: g, silenceMs }, 'gateway silent: forgotten');
    }
  }

  private async shutdown(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
    if (this.gatewaySweep) clearInterval(this.gatewaySweep);
    this.gatewaySweep = null;
    for (const f of this.finished.values()) clearTimeout(f.timer);
    this.finished.clear();
    const nc = this.nc;
    if (!nc) return;
    await Promise.all(this.subs.map((sub) => sub.drain().catch((err: unknown) => this.logger.warn({ err }, 'subscription drain failed'))));
    for (const id of this.ctx.handoffs.ids()) this.engine.cancel(id);
    for (const id of [...this.streams.keys()]) this.engine.fail(id, new Error(SHUTDOWN));
    await this.engine.idle();
    if (nc.isClosed()) return;
    try {
      await nc.flush();
      if (this.ownsConnection) await nc.drain();
    } catch (err) {
      this.logger.warn({ err }, 'NATS flush/drain at stop failed');
    }
    this.logger.info('decode node stopped');
  }

  /** A subscription whose messages are decoded for `types`, handled, and answered when they have a reply. */
  private serve<T extends MessageType>(subject: string, types: readonly T[], handle: (m: MessageOf<T>) => WireMessage | void): Subscription {
    return this.nc!.subscribe(subject, {
      callback: (err: Error | null, msg: Msg) => {
        if (err) {
          this.logger.error({ err, subject }, 'subscription error');
          return;
        }
        try {
          const m = this.rejections.decode(msg.data, subject, types);
          if (!m) return;
          const reply = handle(m);
          if (reply && msg.reply) msg.respond(encodeMessage(reply));
        } catch (e) {
          this.logger.error({ err: e, subject }, 'handler failed');
        }
      },
    });
  }

  private openStream(requestId: string, timing?: PrefillTiming, promptLogprobs?: readonly WireLogprobs[]): TokenStream {
    const subject = this.subjects.tokens(requestId);
    const stream = new TokenStream(requestId, this.opts.tokenFlushMs, (bytes) => this.publish(subject, bytes), (reason, usage) => {
      this.streams.delete(requestId);
      const timer = setTimeout(() => this.finished.delete(requestId), REPLAY_KEEP_MS);
      timer.unref();
      this.finished.set(requestId, { stream, timer });
      this.metrics.finish(reason);
      this.logger.info({ requestId, reason, ...usage }, 'request finished');
    }, { timing, promptLogprobs, onSent: (tokens) => {
      this.metrics.tokensOut.inc(tokens);
      this.counters.tokensOut += tokens;
    } });
    this.streams.set(requestId, stream);
    return stream;
  }

  private failRequest(requestId: string, detail: string): void {
    if (this.streams.has(requestId) || this.engine.scheduler.sequence(requestId)) return; // decoding: its stream ends it
    this.publish(this.subjects.tokens(requestId), encodeMessage(tokensMessage({
      requestId, seq: 0, tokens: [], finishReason: 'error', error: detail.slice(0, 1000) || 'failed before decoding',
    })));
  }

  private sendHeartbeat(): void {
    this.ctx.handoffs.sweep();
    this.publish(this.subjects.heartbeat, encodeMessage(heartbeatOf(this.node, this.engine, this.beat, this.counters, Date.now(), this.draining)));
    this.beat = (this.beat + 1) >>> 0;
  }

  private publish(subject: string, bytes: Uint8Array): void {
    try {
      this.nc!.publish(subject, bytes);
    } catch (err) {
      this.logger.warn({ err, subject }, 'publish failed');
    }
  }
}
