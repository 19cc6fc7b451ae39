// The gateway's view of the decode nodes, built from their heartbeats:
//   1. every heartbeat on `<p>.heartbeat` is validated (a refused one is counted and logged by
//      WireRejections, then ignored) and replaces the node's previous one;
//   2. a seq that does not increase means the node restarted: its new heartbeat is taken and listeners hear
//      'restarted' (the requests it held are gone); seq wraps only after 2^32 beats, so wrap is ignored;
//   3. a node silent for heartbeatTimeoutMs (local clock: senders' clocks may differ) is dropped ('lost');
//   4. a reserve-reply's freePages updates the node's figure until its next heartbeat.
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { SUBJECT_TYPES, type Heartbeat, type WireRejections, type WireSubjects } from '@latentwire/protocol';
import type { Logger } from 'pino';
import { capacityTokens } from './headroom.js';

export interface DecodeNode {
  readonly nodeId: string;
  readonly heartbeat: Heartbeat;
  /** heartbeat.freePages, or a later reserve-reply's figure. */
  readonly freePages: number;
  /** performance.now() when its latest heartbeat arrived. */
  readonly lastSeen: number;
}

/** 'heartbeat': a node appeared or sent a new beat (capacity may have changed). */
export type NodeEvent = { readonly kind: 'heartbeat' | 'restarted' | 'lost'; readonly nodeId: string };
export type NodeListener = (e: NodeEvent) => void;

export interface DecodeRegistryOptions {
  readonly nc: NatsConnection;
  readonly subjects: WireSubjects;
  readonly heartbeatTimeoutMs: number;
  readonly rejections: WireRejections;
  readonly logger: Logger;
}

export class DecodeRegistry {
  private readonly nodesById = new Map<string, DecodeNode>();
  private readonly listeners = new Set<NodeListener>();
  private readonly sub: Subscription;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly opts: DecodeRegistryOptions) {
    this.sub = opts.nc.subscribe(opts.subjects.heartbeat, {
      callback: (err, msg) => {
        if (err) return opts.logger.error({ err }, 'heartbeat subscription failed');
        const hb = opts.rejections.decode(msg.data, msg.subject, SUBJECT_TYPES.heartbeat);
        if (hb) this.onHeartbeat(hb);
      },
    });
    // Checking 4 times per timeout drops a silent node between 1 and 1.25 timeouts after its last beat.
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, opts.heartbeatTimeoutMs / 4));
    this.sweeper.unref();
  }

  /** Resolves once the server has the heartbeat subscription. */
  ready(): Promise<void> {
    return this.opts.nc.flush();
  }

  nodes(): DecodeNode[] {
    return [...this.nodesById.values()];
  }

  node(nodeId: string): DecodeNode | undefined {
    return this.nodesById.get(nodeId);
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

  /** Returns the function that removes the listener. */
  onNodeEvent(listener: NodeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    clearInterval(this.sweeper);
    this.sub.unsubscribe();
    this.nodesById.clear();
    this.listeners.clear();
  }

  private onHeartbeat(hb: Heartbeat): void {
    const prev = this.nodesById.get(hb.nodeId);
    this.nodesById.set(hb.nodeId, { nodeId: hb.nodeId, heartbeat: hb, freePages: hb.freePages, lastSeen: performance.now() });
    if (!prev) this.opts.logger.info({ nodeId: hb.nodeId, layoutKey: hb.layoutKey, totalPages: hb.totalPages }, 'decode node joined');
    if (prev && hb.seq <= prev.heartbeat.seq) {
      this.opts.logger.warn({ nodeId: hb.nodeId, seq: hb.seq, previousSeq: prev.heartbeat.seq }, 'decode node restarted');
      this.emit({ kind: 'restarted', nodeId: hb.nodeId });
    }
    this.emit({ kind: 'heartbeat', nodeId: hb.nodeId });
  }

  private sweep(): void {
    const oldest = performance.now() - this.opts.heartbeatTimeoutMs;
    for (const n of this.nodesById.values()) {
      if (n.lastSeen >= oldest) continue;
      this.nodesById.delete(n.nodeId);
      this.opts.logger.warn({ nodeId: n.nodeId, timeoutMs: this.opts.heartbeatTimeoutMs }, 'decode node lost: no heartbeat');
      this.emit({ kind: 'lost', nodeId: n.nodeId });
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
