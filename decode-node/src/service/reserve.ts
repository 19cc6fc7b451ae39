// reserve → reserve-reply: pages for prompt + max_tokens under a lease, or why not. The reserve's
// generation settings are kept with the handoff until the prefill-done commits it.
import { reserveReplyMessage, type Reserve, type ReserveRefusal, type ReserveReply } from '@latentwire/protocol';
import { checkReplay } from '../engine/replay.js';
import { SchedulerRejection } from '../scheduler/index.js';
import type { ServiceContext } from './context.js';

export function handleReserve(ctx: ServiceContext, m: Reserve): ReserveReply {
  const { engine, node } = ctx;
  const refuse = (reason: ReserveRefusal, detail: string): ReserveReply => {
    ctx.metrics.refuse('reserve', reason);
    ctx.logger.info({ requestId: m.requestId, reason, detail }, 'reserve refused');
    return reserveReplyMessage({ requestId: m.requestId, ok: false, reason, pages: 0, freePages: engine.stats().freePages, leaseMs: 0 });
  };
  if (m.fingerprint !== node.fingerprint) return refuse('incompatible', `fingerprint ${m.fingerprint.slice(0, 16)}… is not this node's`);
  if (m.layoutKey !== node.layoutKey) return refuse('incompatible', `layout ${m.layoutKey}, this node has ${node.layoutKey}`);
  const outside = m.resumeTokens?.find((id) => id >= node.vocabSize);
  if (outside !== undefined) return refuse('incompatible', `resume token ${outside} outside the vocabulary of ${node.vocabSize}`);
  try {
    checkReplay({ id: m.requestId, ...m }, node.vocabSize); // before any prefill work is spent on it
  } catch (err) {
    if (err instanceof RangeError) return refuse('incompatible', err.message);
    throw err;
  }
  let lease;
  try {
    lease = engine.reserveChoices(m.requestId, m.promptTokens, m.maxTokens, m.n ?? 1); // n > 1: choices share the prompt's pages
  } catch (err) {
    if (!(err instanceof SchedulerRejection)) throw err;
    switch (err.reason) {
      case 'no-pages': case 'too-large': case 'duplicate-id': case 'queue-full':
        return refuse(err.reason, err.message);
      default:
        throw err; // reserve() raises no other reason
    }
  }
  ctx.handoffs.add(m);
  return reserveReplyMessage({
    requestId: m.requestId, ok: true, pages: lease.pages.length, freePages: engine.stats().freePages,
    leaseMs: Math.max(0, Math.round(lease.expiresAt - Date.now())),
  });
}
