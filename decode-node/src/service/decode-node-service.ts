// The decode node on NATS. A disaggregated request's life here (subjects: shared/protocol/src/wire/subjects.ts):
//   1. reserve (gateway, request/reply): fingerprint and layout must be this node's; the engine takes pages
//      for prompt + max_tokens under a lease, and a handoff entry starts tracking which KV has arrived.
//   2. kv-chunk (prefill node, request/reply, one per page slice per layer): checked against the
//      reservation, its rows copied into the reserved page, its token range marked; the kv-ack is the
//      sender's flow control.
//   3. prefill-done (control, request/reply): every layer must hold exactly tokens [0, promptTokens), else
//      'incomplete' and the pages go back. The sequence then joins the batch with the prefill's first token.
//   4. Each step's tokens go to <p>.tokens.<requestId>, gathered for up to tokenFlushMs a message; the last
//      message carries the finish reason and usage.
//   5. cancel (control) ends the request in any state; prefill-failed drops a reservation; a lease nobody
//      commits expires in the engine. Either way the pages return to the pool.
// A heartbeat (what this node serves, free pages, batch load) goes out at start and every heartbeatMs.
// Refused messages (not msgpack, wrong version or type, bad sizes or checksum) are counted and logged by
// WireRejections and get no reply: a valid reply would need fields of the message that was refused, so the
// requester's timeout reports them. Nothing a peer sends can throw out of a handler.
import { connect } from '@nats-io/transport-node';
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import {
  natsLink, encodeMessage, registerKernelMetrics, SUBJECT_TYPES, tokensMessage, WireRejections, wireSubjects, type MessageOf, type MessageType, type PrefillTiming, type WireMessage, type WireSubjects,
} from '@latentwire/protocol';
import type { DecodeEngine } from '../engine/engine.js';
import { nodeIdentity, type NodeIdentity, type ServiceContext } from './context.js';
import { handleCancel, handlePrefillDone, handlePrefillFailed, type TokenStreams } from './control.js';
import { Handoffs } from './handoffs.js';
import { heartbeatOf, modelLabel } from './heartbeat.js';
import { handleKvChunk } from './kv.js';
import { DecodeMetrics } from './metrics.js';
import { handleReserve } from './reserve.js';
import { TokenStream } from './token-stream.js';

export interface DecodeNodeServiceOptions {
  /** A connection (the caller closes it) or server URL(s) (the service connects, and drains it in stop()). */
  readonly nats: NatsConnection | string | readonly string[];
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
}

const SHUTDOWN = 'decode node shutting down';

export class DecodeNodeService {
  readonly subjects: WireSubjects;
  readonly node: NodeIdentity;
  readonly rejections: WireRejections;
  readonly metrics: DecodeMetrics;
  private readonly engine: DecodeEngine;
  private readonly logger: Logger;
  private readonly ctx: ServiceContext;
  private readonly streams = new Map<string, TokenStream>();
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

  /** Started, not stopping, and NATS connected right now (for /ready). */
  get connected(): boolean {
    return this.link?.up === true && this.stopping === null && this.nc !== null && !this.nc.isClosed();
  }

  /** Connects if given URLs, subscribes to this node's subjects and starts the heartbeat. */
  async start(): Promise<void> {
    if (this.nc) throw new Error('DecodeNodeService: already started');
    const { nats } = this.opts;
    if (typeof nats === 'string' || Array.isArray(nats)) {
      this.nc = await connect({ servers: typeof nats === 'string' ? nats : [...nats], name: this.node.nodeId });
      this.ownsConnection = true;
    } else {
      this.nc = nats as NatsConnection;
    }
    const s = this.subjects, id = this.node.nodeId;
    const streams: TokenStreams = { open: (r, timing) => this.openStream(r, timing), discard: (r) => void this.streams.delete(r) };
    this.subs = [
      this.serve(s.reserve(id), SUBJECT_TYPES.reserve, (m) => handleReserve(this.ctx, m)),
      this.serve(s.kv(id), SUBJECT_TYPES.kv, (m) => handleKvChunk(this.ctx, m)),
      this.serve(s.control(id), SUBJECT_TYPES.control, (m) => {
        switch (m.type) {
          case 'prefill-done': return handlePrefillDone(this.ctx, m, streams);
          case 'prefill-failed': return handlePrefillFailed(this.ctx, m);
          case 'cancel': return handleCancel(this.ctx, m);
        }
      }),
    ];
    await this.nc.flush(); // the server has the subscriptions before anyone learns of this node
    this.link = natsLink(this.nc);
    this.sendHeartbeat();
    this.heartbeat = setInterval(() => this.sendHeartbeat(), this.opts.heartbeatMs);
    this.heartbeat.unref();
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

  private async shutdown(): Promise<void> {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
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

  private openStream(requestId: string, timing?: PrefillTiming): TokenStream {
    const subject = this.subjects.tokens(requestId);
    const stream = new TokenStream(requestId, this.opts.tokenFlushMs, (bytes) => this.publish(subject, bytes), (reason, usage) => {
      this.streams.delete(requestId);
      this.metrics.finish(reason);
      this.logger.info({ requestId, reason, ...usage }, 'request finished');
    }, { timing, onSent: (tokens) => {
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
    this.publish(this.subjects.heartbeat, encodeMessage(heartbeatOf(this.node, this.engine, this.beat, this.counters)));
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
