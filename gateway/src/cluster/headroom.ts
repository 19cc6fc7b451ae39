// Which decode node a request should try first. Pure functions of heartbeats, so the ordering is testable
// without NATS.
//
// Headroom of a node for a request needing `need` pages, as a fraction of the node's pool:
//   (freePages − pendingPages − need − ahead · (totalPages / maxBatch)) / totalPages
// where pendingPages are the pages of reserves this gateway has sent the node and not yet heard back on
// (reserve-then-rank: a burst of concurrent requests sees each other's reserves before any reply), and
// `ahead` = max(0, running + waiting + 1 − maxBatch) is how many sequences would be in line before this one
// gets a batch slot, each charged one average slot's share of the cache. A fraction, so a small node is not
// starved by a big one nor flooded. It is a least-load policy in the spirit of SGLang's router, with load
// measured in what a decode node runs out of: pages first, batch slots second. Each grant lowers a node's
// freePages (reserve-replies carry the new figure). Ties (within half a page of the smaller pool) go to
// fewer running + waiting, then at random, so equal nodes share a burst.
import { pagesFor, type Heartbeat } from '@latentwire/protocol';
import type { DecodeNode } from './decode-registry.js';

/** The longest prompt + completion a node could ever hold: its context limit or its whole cache. */
export function capacityTokens(hb: Pick<Heartbeat, 'maxContext' | 'totalPages' | 'pageSize'>): number {
  return Math.min(hb.maxContext, hb.totalPages * hb.pageSize);
}

export interface RankedNode {
  readonly node: DecodeNode;
  /** Pages the request needs on this node. */
  readonly need: number;
  /** freePages − pendingPages − need − queue pressure (see above), in pages; may be negative. */
  readonly headroom: number;
  /** headroom ÷ totalPages. */
  readonly fraction: number;
  /** The node's latest figure leaves room for the request now. */
  readonly fits: boolean;
  /** The request could never fit this node (context limit or whole cache). */
  readonly tooLarge: boolean;
}

export function headroomOf(node: DecodeNode, tokens: number): RankedNode {
  const hb = node.heartbeat;
  const need = pagesFor(hb, tokens); // the latent layout's page arithmetic, at the node's page size
  const ahead = Math.max(0, hb.running + hb.waiting + 1 - hb.maxBatch);
  const free = node.freePages - (node.pendingPages ?? 0);
  const headroom = free - need - ahead * (hb.totalPages / hb.maxBatch);
  return { node, need, headroom, fraction: headroom / Math.max(1, hb.totalPages), fits: need <= free, tooLarge: tokens > capacityTokens(hb) };
}

/** Nodes best first for a request of `tokens` (prompt + max completion tokens); `random` breaks ties. */
export function rankByHeadroom(nodes: readonly DecodeNode[], tokens: number, random: () => number = Math.random): RankedNode[] {
  const load = (r: RankedNode) => r.node.heartbeat.running + r.node.heartbeat.waiting;
  const ranked = nodes.map((n) => ({ r: headroomOf(n, tokens), key: random() }));
  const smallest = Math.max(1, Math.min(...nodes.map((n) => n.heartbeat.totalPages)));
  const eps = 0.5 / smallest;
  return ranked
    .sort((a, b) => {
      const d = b.r.fraction - a.r.fraction;
      return Math.abs(d) > eps ? d : load(a.r) - load(b.r) || a.key - b.key;
    })
    .map((x) => x.r);
}
