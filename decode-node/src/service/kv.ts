// kv-chunk → kv-ack: latent KV of a reserved request for one or more runs of prompt tokens (a run is one
// layer's tokens, possibly over several pages; a chunk spans layers when the prefill packed the tail of one
// layer with the next), already in this node's cache layout (the codec checked the data's size against the
// chunk's layoutKey and runs, and its CRC-32). Here the key must be ours and every run inside the model's
// layers and the reservation's prompt and pages, checked for all runs before any byte is written; the
// layout says where each page's part goes, and each part is copied into its layer's page.
import { kvAckMessage, kvChunkPieces, kvChunkRuns, pagesFor, type KvAck, type KvAckRefusal, type KvChunk } from '@latentwire/protocol';
import type { ServiceContext } from './context.js';

export function handleKvChunk(ctx: ServiceContext, m: KvChunk): KvAck {
  const { node } = ctx;
  const where = { requestId: m.requestId, layer: m.layer, tokenStart: m.tokenStart };
  const refuse = (reason: KvAckRefusal, detail: string): KvAck => {
    ctx.metrics.refuse('kv-chunk', reason);
    ctx.logger.debug({ ...where, tokenCount: m.tokenCount, runs: 1 + (m.moreRuns?.length ?? 0), reason, detail }, 'kv-chunk refused');
    return kvAckMessage({ ...where, ok: false, reason, detail });
  };
  if (m.layoutKey !== node.layoutKey) return refuse('incompatible', `layout ${m.layoutKey}, this node has ${node.layoutKey}`);
  const live = ctx.handoffs.get(m.requestId);
  if (live === 'cancelled') return refuse('cancelled', `${m.requestId} was cancelled`);
  if (live === 'no-reservation') return refuse('no-reservation', `${m.requestId} has no live reservation (never made, expired or committed)`);
  const { handoff, reservation } = live;
  const runs = kvChunkRuns(m);
  for (const r of runs) {
    const end = r.tokenStart + r.tokenCount;
    if (r.layer >= node.layers) return refuse('out-of-range', `layer ${r.layer} of a ${node.layers}-layer model`);
    if (pagesFor(node.layout, end) > reservation.pages.length) return refuse('out-of-range', `layer ${r.layer} tokens [${r.tokenStart}, ${end}) need ${pagesFor(node.layout, end)} pages, ${reservation.pages.length} reserved`);
    if (end > handoff.reserve.promptTokens) return refuse('out-of-range', `layer ${r.layer} tokens [${r.tokenStart}, ${end}) beyond the ${handoff.reserve.promptTokens}-token prompt`);
  }
  for (const p of kvChunkPieces(node.layout, m)) ctx.engine.writeKv(m.requestId, p.layer, p.pageIndex, p.slot, p.rows, p.scales);
  for (const r of runs) handoff.coverage.add(r.layer, r.tokenStart, r.tokenStart + r.tokenCount);
  ctx.metrics.kvBytes.inc(m.data.byteLength);
  return kvAckMessage({ ...where, ok: true });
}
