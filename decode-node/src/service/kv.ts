// kv-chunk → kv-ack: rows of one layer for a token range of one page of a reserved request, already in this
// node's cache layout (the codec checked sizes, range and checksum against the chunk's own layoutKey;
// here the key must be ours and the range inside the reservation's prompt), copied into the page.
import { kvAckMessage, kvChunkPlacement, type KvAck, type KvAckRefusal, type KvChunk } from '@latentwire/protocol';
import type { ServiceContext } from './context.js';

export function handleKvChunk(ctx: ServiceContext, m: KvChunk): KvAck {
  const { node } = ctx;
  const where = { requestId: m.requestId, layer: m.layer, pageIndex: m.pageIndex, tokenStart: m.tokenStart };
  const refuse = (reason: KvAckRefusal, detail: string): KvAck => {
    ctx.metrics.refuse('kv-chunk', reason);
    ctx.logger.debug({ ...where, reason, detail }, 'kv-chunk refused');
    return kvAckMessage({ ...where, ok: false, reason, detail });
  };
  if (m.layoutKey !== node.layoutKey) return refuse('incompatible', `layout ${m.layoutKey}, this node has ${node.layoutKey}`);
  const live = ctx.handoffs.get(m.requestId);
  if (live === 'cancelled') return refuse('cancelled', `${m.requestId} was cancelled`);
  if (live === 'no-reservation') return refuse('no-reservation', `${m.requestId} has no live reservation (never made, expired or committed)`);
  const { handoff, reservation } = live;
  const end = m.tokenStart + m.tokenCount;
  if (m.layer >= node.layers) return refuse('out-of-range', `layer ${m.layer} of a ${node.layers}-layer model`);
  if (m.pageIndex >= reservation.pages.length) return refuse('out-of-range', `page ${m.pageIndex} of ${reservation.pages.length} reserved`);
  if (end > handoff.promptTokens) return refuse('out-of-range', `tokens [${m.tokenStart}, ${end}) beyond the ${handoff.promptTokens}-token prompt`);
  ctx.engine.writeKv(m.requestId, m.layer, m.pageIndex, kvChunkPlacement(m).slot, m.rows, m.scales);
  handoff.coverage.add(m.layer, m.tokenStart, end);
  ctx.metrics.kvBytes.inc(m.rows.byteLength + m.scales.byteLength);
  return kvAckMessage({ ...where, ok: true });
}
