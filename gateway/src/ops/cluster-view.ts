// The operators' view of the cluster (GET /v1/cluster and the /cluster page):
//   1. decode nodes come from the DecodeRegistry's heartbeats: what they serve, KV layout, load, pages;
//   2. every sampleMs each live node's figures become one sample in its ring (windowMs of them), so the page
//      can plot the last minutes; throughput is the difference of token counts between samples, the node's
//      own count (heartbeat tokensOut, all gateways' requests) when it sends one, else this gateway's;
//   3. this gateway's own requests report their TTFT and inter-token gaps per decode node (NodeTimings);
//      percentiles are taken over a trailing window;
//   4. prefill workers are known only through Redis: BullMQ's client list of the prefill queue, and the
//      queue's job counts.
import type { Heartbeat, PrefillJob } from '@latentwire/protocol';
import type { Queue } from 'bullmq';
import type { DecodeNode, DecodeRegistry } from '../cluster/decode-registry.js';
import type { NodeTimings } from '../http/cluster-source.js';
import { percentiles, Ring, type Observation, type Percentiles } from './ring.js';

export interface ClusterViewOptions {
  readonly registry: DecodeRegistry;
  /** The prefill queue (for its workers and job counts); without it the view lists decode nodes only. */
  readonly queue?: Queue<PrefillJob> | undefined;
  /** The gateway's model: nodes serving another fingerprint are marked incompatible. */
  readonly model: { readonly id: string; readonly fingerprint: string };
  /** Period of the per-node samples (default 2000 ms). */
  readonly sampleMs?: number;
  /** How far back samples and latencies are kept (default 5 min). */
  readonly windowMs?: number;
  /** Clock (ms since the epoch), for tests. */
  readonly now?: () => number;
}

/** One point of a node's history. Rates and percentiles cover the time since the previous sample / the trailing minute. */
export interface NodeSample {
  readonly at: number;
  readonly usedPages: number;
  readonly reservedPages: number;
  readonly freePages: number;
  readonly running: number;
  readonly waiting: number;
  readonly tokensPerSecond: number | null;
  readonly ttftP50Ms: number | null;
  readonly ttftP90Ms: number | null;
  readonly itlP50Ms: number | null;
  readonly itlP90Ms: number | null;
}

export interface DecodeNodeView {
  readonly nodeId: string;
  readonly role: 'decode';
  readonly model: string | null;
  readonly fingerprint: string;
  /** Serves the gateway's model (fingerprint match): only those get requests. */
  readonly compatible: boolean;
  readonly kv: { readonly layoutKey: string; readonly dtype: string; readonly pageSize: number };
  readonly load: { readonly running: number; readonly waiting: number; readonly maxBatch: number; readonly maxContext: number };
  /** used = total - free - reserved; reserved is null when the node does not report it (then used counts it). */
  readonly pages: { readonly total: number; readonly used: number; readonly free: number; readonly reserved: number | null };
  readonly throughput: {
    /** Over the window: the node's own count when it reports one, else this gateway's. */
    readonly tokensPerSecond: number | null;
    readonly source: 'node' | 'gateway';
    /** Tokens of this gateway's requests over the window. */
    readonly gatewayTokensPerSecond: number | null;
  };
  /** This gateway's requests on this node over the window, as the gateway timed them. */
  readonly latency: { readonly ttftMs: Percentiles; readonly itlMs: Percentiles };
  readonly startedAt: number | null;
  readonly lastHeartbeatMsAgo: number;
  readonly heartbeatSeq: number;
  readonly history: readonly NodeSample[];
}

export interface PrefillWorkerView {
  readonly name: string;
  readonly role: 'prefill';
  /** Redis connections this worker holds (BullMQ opens more than one). */
  readonly connections: number;
  readonly addr: string | null;
  readonly ageSeconds: number | null;
  readonly idleSeconds: number | null;
}

export interface ClusterSnapshot {
  readonly at: number;
  readonly windowSeconds: number;
  readonly sampleSeconds: number;
  readonly model: { readonly id: string; readonly fingerprint: string };
  readonly decode: readonly DecodeNodeView[];
  readonly prefill: {
    /** null: Redis could not be asked (the error says why). */
    readonly workers: readonly PrefillWorkerView[] | null;
    readonly queue: Readonly<Record<string, number>> | null;
    readonly error?: string;
  };
}

/** The window that query parameters may ask for, in seconds. */
export const MIN_WINDOW_SECONDS = 1;

interface NodeHistory {
  readonly samples: Ring<NodeSample & { readonly nodeTokens: number | null; readonly gatewayTokens: number }>;
  readonly ttft: Ring<Observation>;
  readonly itl: Ring<Observation>;
  gatewayTokens: number;
}

const LATENCY_CAPACITY = 4096;
/** The trailing span each sample's percentiles cover. */
const SAMPLE_PERCENTILE_MS = 60_000;
const QUEUE_STATES = ['waiting', 'active', 'delayed', 'prioritized', 'waiting-children', 'failed'] as const;

export class ClusterView implements NodeTimings {
  readonly sampleMs: number;
  readonly windowMs: number;
  private readonly histories = new Map<string, NodeHistory>();
  private readonly now: () => number;
  private readonly timer: NodeJS.Timeout;
  private readonly unlisten: () => void;

  constructor(private readonly o: ClusterViewOptions) {
    this.sampleMs = o.sampleMs ?? 2000;
    this.windowMs = o.windowMs ?? 5 * 60_000;
    if (!(this.sampleMs >= 10) || !(this.windowMs >= this.sampleMs)) throw new RangeError(`ClusterView: sampleMs ${this.sampleMs}, windowMs ${this.windowMs}`);
    this.now = o.now ?? Date.now;
    this.unlisten = o.registry.onNodeEvent((e) => {
      // a restarted node's counters began again, a lost one's history is of no use
      if (e.kind !== 'heartbeat') this.histories.delete(e.nodeId);
    });
    this.timer = setInterval(() => this.sample(), this.sampleMs);
    this.timer.unref();
  }

  firstTokens(nodeId: string, ttftMs: number, tokens: number): void {
    const h = this.history(nodeId);
    const at = this.now();
    h.ttft.push({ at, ms: ttftMs, weight: 1 });
    if (tokens > 1) h.itl.push({ at, ms: 0, weight: tokens - 1 }); // they came with the first
    h.gatewayTokens += tokens;
  }

  laterTokens(nodeId: string, gapMs: number, tokens: number): void {
    const h = this.history(nodeId);
    h.itl.push({ at: this.now(), ms: gapMs, weight: tokens });
    h.gatewayTokens += tokens;
  }

  /** Takes one sample of every live node now (the timer does it every sampleMs). */
  sample(): void {
    const at = this.now();
    const live = this.o.registry.nodes();
    // timings that arrived after a node was dropped must not keep its history forever
    const ids = new Set(live.map((n) => n.nodeId));
    for (const id of this.histories.keys()) if (!ids.has(id)) this.histories.delete(id);
    for (const n of live) {
      const h = this.history(n.nodeId);
      const prev = h.samples.last();
      const hb = n.heartbeat;
      const nodeTokens = hb.tokensOut ?? null;
      const ttft = percentiles(h.ttft.toArray(), at - SAMPLE_PERCENTILE_MS);
      const itl = percentiles(h.itl.toArray(), at - SAMPLE_PERCENTILE_MS);
      h.samples.push({
        at, ...pageFigures(n), running: hb.running, waiting: hb.waiting,
        tokensPerSecond: prev ? rate(prev, { at, nodeTokens, gatewayTokens: h.gatewayTokens }) : null,
        ttftP50Ms: ttft.p50, ttftP90Ms: ttft.p90, itlP50Ms: itl.p50, itlP90Ms: itl.p90,
        nodeTokens, gatewayTokens: h.gatewayTokens,
      });
    }
  }

  /** The cluster now; rates and percentiles over the last windowMs (at most the view's own window). */
  async snapshot(windowMs = this.windowMs): Promise<ClusterSnapshot> {
    const at = this.now();
    const since = at - Math.min(windowMs, this.windowMs);
    const decode = this.o.registry.nodes()
      .sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0))
      .map((n) => this.nodeView(n, at, since));
    return {
      at, windowSeconds: (at - since) / 1000, sampleSeconds: this.sampleMs / 1000, model: { ...this.o.model }, decode,
      prefill: await this.prefillView(),
    };
  }

  close(): void {
    clearInterval(this.timer);
    this.unlisten();
    this.histories.clear();
  }

  private history(nodeId: string): NodeHistory {
    let h = this.histories.get(nodeId);
    if (!h) {
      const samples = Math.ceil(this.windowMs / this.sampleMs) + 1;
      h = { samples: new Ring(samples), ttft: new Ring(LATENCY_CAPACITY), itl: new Ring(LATENCY_CAPACITY), gatewayTokens: 0 };
      this.histories.set(nodeId, h);
    }
    return h;
  }

  private nodeView(n: DecodeNode, at: number, since: number): DecodeNodeView {
    const hb: Heartbeat = n.heartbeat;
    const h = this.history(n.nodeId);
    const all = h.samples.toArray();
    const kept = all.filter((s) => s.at >= since);
    const first = kept[0], last = kept[kept.length - 1];
    const nodeRate = first && last && last.at > first.at && first.nodeTokens !== null && last.nodeTokens !== null
      ? round2((last.nodeTokens - first.nodeTokens) / ((last.at - first.at) / 1000)) : null;
    const gatewayRate = first && last && last.at > first.at ? round2((last.gatewayTokens - first.gatewayTokens) / ((last.at - first.at) / 1000)) : null;
    const pages = pageFigures(n);
    return {
      nodeId: n.nodeId, role: 'decode', model: hb.model ?? null, fingerprint: hb.fingerprint, compatible: hb.fingerprint === this.o.model.fingerprint,
      kv: { layoutKey: hb.layoutKey, dtype: hb.kvDtype, pageSize: hb.pageSize },
      load: { running: hb.running, waiting: hb.waiting, maxBatch: hb.maxBatch, maxContext: hb.maxContext },
      pages: { total: hb.totalPages, used: pages.usedPages, free: pages.freePages, reserved: hb.reservedPages === undefined ? null : pages.reservedPages },
      throughput: { tokensPerSecond: hb.tokensOut === undefined ? gatewayRate : nodeRate, source: hb.tokensOut === undefined ? 'gateway' : 'node', gatewayTokensPerSecond: gatewayRate },
      latency: { ttftMs: percentiles(h.ttft.toArray(), since), itlMs: percentiles(h.itl.toArray(), since) },
      startedAt: hb.startedAt ?? null,
      lastHeartbeatMsAgo: Math.max(0, Math.round(performance.now() - n.lastSeen)),
      heartbeatSeq: hb.seq,
      history: kept.map(({ nodeTokens: _n, gatewayTokens: _g, ...s }) => s),
    };
  }

  private async prefillView(): Promise<ClusterSnapshot['prefill']> {
    const queue = this.o.queue;
    if (!queue) return { workers: [], queue: null };
    try {
      const [clients, counts] = await Promise.all([queue.getWorkers(), queue.getJobCounts(...QUEUE_STATES)]);
      return { workers: prefillWorkers(clients), queue: counts };
    } catch (err) {
      return { workers: null, queue: null, error: `Redis: ${(err as Error).message}` };
    }
  }
}

/** BullMQ's client list entries (one per Redis connection) grouped into workers by their connection name. */
export function prefillWorkers(clients: readonly Readonly<Record<string, string>>[]): PrefillWorkerView[] {
  const byName = new Map<string, PrefillWorkerView>();
  for (const c of clients) {
    const raw = c['rawname'] ?? c['name'] ?? '';
    const i = raw.indexOf(':w:');
    const name = i >= 0 ? raw.slice(i + 3) : '(unnamed)';
    const seen = byName.get(name);
    const num = (k: string): number | null => (c[k] !== undefined && /^\d+$/.test(c[k]!) ? Number(c[k]) : null);
    byName.set(name, seen ? { ...seen, connections: seen.connections + 1, ageSeconds: Math.max(seen.ageSeconds ?? 0, num('age') ?? 0), idleSeconds: Math.min(seen.idleSeconds ?? Infinity, num('idle') ?? Infinity) } : {
      name, role: 'prefill', connections: 1, addr: c['addr'] ?? null, ageSeconds: num('age'), idleSeconds: num('idle'),
    });
  }
  return [...byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function pageFigures(n: DecodeNode): { usedPages: number; reservedPages: number; freePages: number } {
  const hb = n.heartbeat;
  const free = Math.min(n.freePages, hb.totalPages);
  const reserved = Math.min(hb.reservedPages ?? 0, hb.totalPages - free);
  return { usedPages: hb.totalPages - free - reserved, reservedPages: reserved, freePages: free };
}

function rate(
  prev: { readonly at: number; readonly nodeTokens: number | null; readonly gatewayTokens: number },
  cur: { readonly at: number; readonly nodeTokens: number | null; readonly gatewayTokens: number },
): number | null {
  const s = (cur.at - prev.at) / 1000;
  if (s <= 0) return null;
  if (cur.nodeTokens !== null && prev.nodeTokens !== null) return round2(Math.max(0, cur.nodeTokens - prev.nodeTokens) / s);
  return round2((cur.gatewayTokens - prev.gatewayTokens) / s);
}

const round2 = (x: number): number => Math.round(x * 100) / 100;
