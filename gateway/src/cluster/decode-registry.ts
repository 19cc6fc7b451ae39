// The gateway's view of the decode nodes, built from their heartbeats:
//   1. every heartbeat on `<p>.heartbeat` is validated (a refused one is counted and logged by
//      WireRejections, then ignored) and replaces the node's previous one;
//   2. a seq that does not increase means the node restarted: its new heartbeat is taken and listeners hear
//      'restarted' (the requests it held are gone); seq wraps only after 2^32 beats, so wrap is ignored;
//   3. a node silent for heartbeatTimeoutMs (local clock: senders' clocks may differ) is probed with a ping
//      request on its own subject; only when no pong comes within probeTimeoutMs is it dropped ('lost').
//      Silence is counted only while this gateway could hear: not while its NATS link is down (a reconnect
//      gives every node a fresh timeout), and not while its own event loop was blocked (each sweep measures
//      how late it runs and gives every node that time back). A probe that timed out across a blocked loop is
//      tried again, since its pong may be waiting unread;
//   4. a reserve-reply's freePages updates the node's figure until its next heartbeat; reserves in flight
//      count as pending pages (reserving()), so concurrent requests rank with each other's reserves;
//   5. a heartbeat saying `draining` keeps the node in the pool for the requests it runs, but routable()
//      leaves it out: it gets nothing new.
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { SUBJECT_TYPES, encodeMessage, pingMessage, type Heartbeat, type WireRejections, type WireSubjects } from '@latentwire/protocol';
import type { Logger } from 'pino';
import { capacityTokens } from './headroom.js';

export interface DecodeNode {
  readonly nodeId: string;
  readonly heartbeat: Heartbeat;
  /** heartbeat.freePages, or a later reserve-reply's figure. */
  readonly freePages: number;
  /** performance.now() when its latest heartbeat arrived (moved later by stalls of this gateway). */
  readonly lastSeen: number;
  /** Pages of reserves sent to it and not answered yet. */
  readonly pendingPages?: number;
}

/** 'heartbeat': a node appeared or sent a new beat (capacity may have changed). */
export type NodeEvent = { readonly kind: 'heartbeat' | 'restarted' | 'lost'; readonly nodeId: string };
export type NodeListener = (e: NodeEvent) => void;

export interface DecodeRegistryOptions {
  readonly nc: NatsConnection;
  readonly subjects: WireSubjects;
  readonly heartbeatTimeoutMs: number;
  /** How long a silent node has to answer the ping probe (default 1000 ms). */
  readonly probeTimeoutMs?: number;
  readonly rejections: WireRejections;
  readonly logger: Logger;
}

export class DecodeRegistry {
  private readonly nodesById = new Map<string, DecodeNode>();
  private readonly listeners = new Set<NodeListener>();
  private readonly reconnectListeners = new Set<() => void>();
  private readonly sub: Subscription;
  private readonly sweeper: NodeJS.Timeout;
  private readonly pending = new Map<string, number>();
  private readonly probing = new Set<string>();
  private readonly sweepEveryMs: number;
  private lastSweep = performance.now();
  private linkDown = false;
  /** Counts reconnects, so a probe that spans one is not believed. */
  private reconnects = 0;
  private nonce = 0;
  private closed = false;

  constructor(private readonly opts: DecodeRegistryOptions) {
    this.sub = opts.nc.subscribe(opts.subjects.heartbeat, {
      callback: (err, msg) => {
        if (err) return opts.logger.error({ err }, 'heartbeat subscription failed');
        const hb = opts.rejections.decode(msg.data, msg.subject, SUBJECT_TYPES.heartbeat);
        if (hb) this.onHeartbeat(hb);
      },
    });
    // Checking 4 times per timeout probes a silent node between 1 and 1.25 timeouts after its last beat.
    this.sweepEveryMs = Math.max(10, opts.heartbeatTimeoutMs / 4);
    this.sweeper = setInterval(() => this.sweep(), this.sweepEveryMs);
    this.sweeper.unref();
    void this.watchLink();
  }

  /** Whether this gateway's NATS link is up (as far as the client knows). */
  get connected(): boolean {
    return !this.linkDown && !this.opts.nc.isClosed();
  }

  /** Resolves once the server has the heartbeat subscription. */
  ready(): Promise<void> {
    return this.opts.nc.flush();
  }

  nodes(): DecodeNode[] {
    return [...this.nodesById.values()].map((n) => this.withPending(n));
  }

  node(nodeId: string): DecodeNode | undefined {
    const n = this.nodesById.get(nodeId);
    return n && this.withPending(n);
  }

  /**
   * Live nodes serving the model with this fingerprint (and this cache layout, when given), by nodeId. The
   * gateway takes any layout, page size or dtype: the reserving node's layoutKey travels with the job.
   */
  compatible(fingerprint: string, layoutKey?: string): DecodeNode[] {
    return this.nodes()
      .filter((n) => n.heartbeat.fingerprint === fingerprint && (layoutKey === undefined || n.heartbeat.layoutKey === layoutKey))
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0));
  }

  /** compatible() without the draining nodes: where new requests may go. */
  routable(fingerprint: string, layoutKey?: string): DecodeNode[] {
    return this.compatible(fingerprint, layoutKey).filter((n) => n.heartbeat.draining !== true);
  }

  /** Counts `pages` as pending on the node until the returned function is called (the reserve's answer came). */
  reserving(nodeId: string, pages: number): () => void {
    this.pending.set(nodeId, (this.pending.get(nodeId) ?? 0) + pages);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.pending.get(nodeId) ?? 0) - pages;
      if (left > 0) this.pending.set(nodeId, left);
      else this.pending.delete(nodeId);
    };
  }

  /** The longest prompt + completion any compatible node could ever hold, or undefined with none. */
  maxRequestTokens(fingerprint: string): number | undefined {
    const caps = this.compatible(fingerprint).map((n) => capacityTokens(n.heartbeat));
    return caps.length === 0 ? undefined : Math.max(...caps);
  }

  /** A reserve-reply's figure; no event, so a refusal does not wake waiting requests (the next beat will). */
  noteFreePages(nodeId: string, freePages: number): void {
    const n = this.nodesById.get(nodeId);
    if (n) this.nodesById.set(nodeId, { ...n, freePages: Math.min(freePages, n.heartbeat.totalPages) });
  }

  /** Called after each NATS reconnect of this gateway; returns the function that removes it. */
  onReconnect(listener: () => void): () => void {
    this.reconnectListeners.add(listener);
    return () => this.reconnectListeners.delete(listener);
  }

  /** Returns the function that removes the listener. */
  onNodeEvent(listener: NodeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.closed = true;
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    this.nodesById.clear();
    this.listeners.clear();
  }

  private withPending(n: DecodeNode): DecodeNode {
    const p = this.pending.get(n.nodeId);
    return p ? { ...n, pendingPages: p } : n;
  }

  private async watchLink(): Promise<void> {
    for await (const s of this.opts.nc.status()) {
      if (s.type === 'disconnect') {
        this.linkDown = true;
      } else if (s.type === 'reconnect') {
        this.linkDown = false;
        this.reconnects++;
        // Heartbeats sent while we were away are lost, not late: every node starts a fresh timeout now.
        const now = performance.now();
        for (const n of this.nodesById.values()) this.nodesById.set(n.nodeId, { ...n, lastSeen: Math.max(n.lastSeen, now) });
        this.opts.logger.info({ nodes: this.nodesById.size }, 'NATS reconnected: node timeouts restarted');
        for (const l of this.reconnectListeners) {
          try {
            l();
          } catch (err) {
            this.opts.logger.error({ err }, 'reconnect listener failed');
          }
        }
      }
    }
  }

  private onHeartbeat(hb: Heartbeat): void {
    const prev = this.nodesById.get(hb.nodeId);
    if (hb.draining && !prev?.heartbeat.draining) this.opts.logger.info({ nodeId: hb.nodeId }, 'decode node draining: no new requests go to it');
    this.nodesById.set(hb.nodeId, { nodeId: hb.nodeId, heartbeat: hb, freePages: hb.freePages, lastSeen: performance.now() });
    if (!prev) this.opts.logger.info({ nodeId: hb.nodeId, layoutKey: hb.layoutKey, totalPages: hb.totalPages }, 'decode node joined');
    if (prev && hb.seq <= prev.heartbeat.seq) {
      this.opts.logger.warn({ nodeId: hb.nodeId, seq: hb.seq, previousSeq: prev.heartbeat.seq }, 'decode node restarted');
      this.emit({ kind: 'restarted', nodeId: hb.nodeId });
    }
    this.emit({ kind: 'heartbeat', nodeId: hb.nodeId });
  }

  private sweep(): void {
    const now = performance.now();
    const stalled = Math.max(0, now - this.lastSweep - this.sweepEveryMs);
    this.lastSweep = now;
    if (stalled > this.sweepEveryMs) {
      // This loop was blocked: heartbeats may sit unread. The nodes get that time back.
      for (const n of this.nodesById.values()) this.nodesById.set(n.nodeId, { ...n, lastSeen: n.lastSeen + stalled });
      this.opts.logger.warn({ stalledMs: Math.round(stalled) }, 'gateway event loop was blocked: node timeouts extended');
    }
    if (!this.connected) return; // we hear nobody while disconnected: that is not their silence
    const oldest = now - this.opts.heartbeatTimeoutMs;
    for (const n of this.nodesById.values()) {
      if (n.lastSeen >= oldest || this.probing.has(n.nodeId)) continue;
      void this.probe(n);
    }
  }

  /** Pings a silent node; drops it ('lost') unless it answers or our own link or loop failed meanwhile. */
  private async probe(n: DecodeNode): Promise<void> {
    const { nc, subjects, rejections, logger, heartbeatTimeoutMs } = this.opts;
    const timeout = this.opts.probeTimeoutMs ?? 1000;
    this.probing.add(n.nodeId);
    try {
      for (let attempt = 0; attempt < 2; attempt++) {
        const reconnects = this.reconnects;
        const sent = performance.now();
        try {
          const nonce = (this.nonce = (this.nonce + 1) >>> 0);
          const reply = await nc.request(subjects.ping(n.nodeId), encodeMessage(pingMessage({ nonce })), { timeout });
          const pong = rejections.decode(reply.data, `${subjects.ping(n.nodeId)} (reply)`, SUBJECT_TYPES.pingReply);
          if (pong && pong.nodeId === n.nodeId) {
            const cur = this.nodesById.get(n.nodeId);
            if (cur) this.nodesById.set(n.nodeId, { ...cur, lastSeen: performance.now() });
            logger.warn({ nodeId: n.nodeId, timeoutMs: heartbeatTimeoutMs }, 'decode node missed heartbeats but answered the probe: kept');
            return;
          }
        } catch {
          // no responders or timeout: decided below
        }
        if (this.closed) return;
        const cur = this.nodesById.get(n.nodeId);
        if (!cur || cur.lastSeen > n.lastSeen) return; // gone already, or a heartbeat came meanwhile
        if (!this.connected || this.reconnects !== reconnects) return; // our link failed, not the node: next sweep decides
        const late = performance.now() - sent > timeout * 1.5 + 50; // our loop was blocked: the pong may sit unread
        if (!late) break;
      }
      this.nodesById.delete(n.nodeId);
      logger.warn({ nodeId: n.nodeId, timeoutMs: heartbeatTimeoutMs, probeTimeoutMs: timeout }, 'decode node lost: no heartbeat and no answer to a probe');
      this.emit({ kind: 'lost', nodeId: n.nodeId });
    } finally {
      this.probing.delete(n.nodeId);
    }
  }

  private emit(e: NodeEvent): void {
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.opts.logger.error({ err, event: e }, 'decode node listener failed');
      }
    }
  }
}
