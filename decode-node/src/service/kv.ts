// kv-chunk → kv-ack: one layer's latent KV for a run of prompt tokens of a reserved request, possibly over
// several pages, already in this node's cache layout (the codec checked the data's size against the
// chunk's layoutKey, and its CRC-32). Here the key must be ours and the run inside the reservation's
// prompt and pages; the layout says where each page's part goes, and each part is copied into its page.
import { kvAckMessage, kvChunkPieces, pagesFor, type KvAck, type KvAckRefusal, type KvChunk } from '@latentwire/protocol';
import type { ServiceContext } from './context.js';

export function handleKvChunk(ctx: ServiceContext, m: KvChunk): KvAck {
  const { node } = ctx;
  const where = { requestId: m.requestId, layer: m.layer, tokenStart: m.tokenStart };
  const refuse = (reason: KvAckRefusal, detail: string): KvAck => {
    ctx.metrics.refuse('kv-chunk', reason);
    ctx.logger.debug({ ...where, tokenCount: m.tokenCount, reason, detail }, 'kv-chunk refused');
    return kvAckMessage({ ...where, ok: false, reason, detail });
  };
  if (m.layoutKey !== node.layoutKey) return refuse('incompatible', `layout ${m.layoutKey}, this node has ${node.layoutKey}`);
  const live = ctx.handoffs.get(m.requestId);
  if (live === 'cancelled') return refuse('cancelled', `${m.requestId} was cancelled`);
  if (live === 'no-reservation') return refuse('no-reservation', `${m.requestId} has no live reservation (never made, expired or committed)`);
  const { handoff, reservation } = live;
  const end = m.tokenStart + m.tokenCount;
  if (m.layer >= node.layers) return refuse('out-of-range', `layer ${m.layer} of a ${node.layers}-layer model`);
  if (pagesFor(node.layout, end) > reservation.pages.length) return refuse('out-of-range', `tokens [${m.tokenStart}, ${end}) need ${pagesFor(node.layout, end)} pages, ${reservation.pages.length} reserved`);
  if (end > handoff.reserve.promptTokens) return refuse('out-of-range', `tokens [${m.tokenStart}, ${end}) beyond the ${handoff.reserve.promptTokens}-token prompt`);
  for (const p of kvChunkPieces(node.layout, m)) ctx.engine.writeKv(m.requestId, m.layer, p.pageIndex, p.slot, p.rows, p.scales);
  handoff.coverage.add(m.layer, m.tokenStart, end);
  ctx.metrics.kvBytes.inc(m.data.byteLength);
  return kvAckMessage({ ...where, ok: true });
}
