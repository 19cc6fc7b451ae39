// Which decode node a request should try first. Pure functions of heartbeats, so the ordering is testable
// without NATS.
//
// Headroom, in KV pages, of a node for a request needing `need` pages:
//   freePages − need − ahead · (totalPages / maxBatch)
// where `ahead` = max(0, running + waiting + 1 − maxBatch) is how many sequences would be in line before this
// one gets a batch slot, each charged one average slot's share of the cache. It is a least-load policy in
// the spirit of SGLang's router (send to the least loaded worker), with load measured in what a decode node
// runs out of: pages first, batch slots second. Each grant lowers a node's freePages (reserve-replies
// carry the new figure), so successive requests spread over nodes. Ties go to fewer running + waiting,
// then to the smaller nodeId, so the order is deterministic.
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
  /** freePages − need − queue pressure (see above); may be negative. */
  readonly headroom: number;
  /** The node's latest figure leaves room for the request now. */
  readonly fits: boolean;
  /** The request could never fit this node (context limit or whole cache). */
  readonly tooLarge: boolean;
}

export function headroomOf(node: DecodeNode, tokens: number): RankedNode {
  const hb = node.heartbeat;
  const need = pagesFor(hb, tokens); // the latent layout's page arithmetic, at the node's page size
  const ahead = Math.max(0, hb.running + hb.waiting + 1 - hb.maxBatch);
  const headroom = node.freePages - need - ahead * (hb.totalPages / hb.maxBatch);
  return { node, need, headroom, fits: need <= node.freePages, tooLarge: tokens > capacityTokens(hb) };
}

/** Nodes best first for a request of `tokens` (prompt + max completion tokens). */
export function rankByHeadroom(nodes: readonly DecodeNode[], tokens: number): RankedNode[] {
  const load = (r: RankedNode) => r.node.heartbeat.running + r.node.heartbeat.waiting;
  return nodes
    .map((n) => headroomOf(n, tokens))
    .sort((a, b) => b.headroom - a.headroom || load(a) - load(b) || (a.node.nodeId < b.node.nodeId ? -1 : a.node.nodeId > b.node.nodeId ? 1 : 0));
}
