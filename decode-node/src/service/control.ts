// The control subject: prefill-done (→ prefill-done-ack), prefill-failed and cancel (no reply).
import {
  cancelAckMessage, choiceRequestId, choiceSampling, prefillDoneAckMessage, type Cancel, type CancelAck, type Renew, type PrefillDone, type PrefillDoneAck,
  type PrefillDoneRefusal, type PrefillFailed, type PrefillTiming, type WireLogprobs,
} from '@latentwire/protocol';
import type { RequestEvents } from '../engine/engine.js';
import { SchedulerRejection } from '../scheduler/index.js';
import type { ServiceContext } from './context.js';

/** Where an admitted request's tokens go: its TokenStream, opened as it is admitted. */
export interface TokenStreams {
  /** timing: the prefill's, for the first tokens message; promptLogprobs (echo with logprobs) go with it too. */
  open(requestId: string, timing?: PrefillTiming, promptLogprobs?: readonly WireLogprobs[]): RequestEvents;
  /** Forgets a stream that never got an event (admission failed). */
  discard(requestId: string): void;
}

/**
 * Commits a complete handoff: the sequence joins the batch with the prefill's first token and its tokens go
 * to the request's TokenStream (opened only once the handoff checks out). Any refusal
 * also ends the reservation, so its pages return at once: a handoff that failed a check can't be repaired.
 */
export function handlePrefillDone(ctx: ServiceContext, m: PrefillDone, streams: TokenStreams): PrefillDoneAck {
  const { engine, node } = ctx;
  const refuse = (reason: PrefillDoneRefusal, detail: string): PrefillDoneAck => {
    if (reason !== 'no-reservation' && reason !== 'cancelled') engine.cancel(m.requestId);
    ctx.handoffs.end(m.requestId, reason !== 'no-reservation'); // late kv-chunks then get 'cancelled'
    ctx.metrics.refuse('prefill-done', reason);
    if (reason !== 'cancelled') ctx.failRequest(m.requestId, `prefill-done refused (${reason}): ${detail}`);
    ctx.logger.info({ requestId: m.requestId, reason, detail }, 'prefill-done refused');
    return prefillDoneAckMessage({ requestId: m.requestId, ok: false, reason, detail });
  };
  const live = ctx.handoffs.get(m.requestId);
  if (live === 'cancelled') return refuse('cancelled', `${m.requestId} was cancelled`);
  if (live === 'no-reservation') return refuse('no-reservation', `${m.requestId} has no live reservation (never made, expired or already committed)`);
  const { reserve } = live.handoff;
  if (m.fingerprint !== node.fingerprint) return refuse('incompatible', `fingerprint ${m.fingerprint.slice(0, 16)}… is not this node's`);
  if (m.layoutKey !== node.layoutKey) return refuse('incompatible', `layout ${m.layoutKey}, this node has ${node.layoutKey}`);
  if (m.layers !== node.layers) return refuse('incompatible', `${m.layers} layers sent, the model has ${node.layers}`);
  if (m.firstToken >= node.vocabSize) return refuse('incompatible', `firstToken ${m.firstToken} outside the vocabulary of ${node.vocabSize}`);
  if (m.promptTokens !== reserve.promptTokens) return refuse('incompatible', `promptTokens ${m.promptTokens}, ${reserve.promptTokens} reserved`);
  const missing = live.handoff.coverage.missing();
  if (missing) return refuse('incomplete', missing);
  const req = {
    id: m.requestId,
    // the engine only reads a prefilled request's prompt length: a hole-y array of that length, no ids
    promptIds: new Array<number>(m.promptTokens),
    maxTokens: reserve.maxTokens, sampling: reserve.sampling, stopTokenIds: reserve.stopTokenIds, eosTokenIds: reserve.eosTokenIds,
    ...(reserve.promptTokenSet ? { promptTokenSet: tokenSetIds(reserve.promptTokenSet, node.vocabSize) } : {}),
    ...(reserve.resumeTokens?.length ? { resumeTokens: reserve.resumeTokens } : {}), // a resume prefilled again: seeds penalties and grammar
    ...(reserve.replayTokens?.length ? { replayTokens: reserve.replayTokens } : {}), // a resume replayed: the prefill's first token is discarded
  };
  const firstLogprobs = m.firstLogprobs ? { logprob: m.firstLogprobs.logprob, top: m.firstLogprobs.top.map(([id, logprob]) => ({ id, logprob })) } : undefined;
  if (reserve.sampling.logprobs !== undefined && !firstLogprobs) return refuse('incompatible', 'the reserve asked for logprobs and the prefill-done carries none');
  // n > 1 choices (the reserve's n): each decodes under its own id (choiceRequestId) and seed (choiceSampling)
  const n = reserve.n ?? 1;
  if ((m.moreChoices?.length ?? 0) !== n - 1) return refuse('incompatible', `${n} choices reserved, ${1 + (m.moreChoices?.length ?? 0)} first tokens sent`);
  const choiceIds = n > 1 ? Array.from({ length: n }, (_, i) => choiceRequestId(m.requestId, i)) : [m.requestId];
  try {
    if (n === 1) engine.admitPrefilled(req, m.firstToken, streams.open(m.requestId, m.timing, m.promptLogprobs), firstLogprobs);
    else {
      const firsts = [{ firstToken: m.firstToken, firstLogprobs: m.firstLogprobs }, ...m.moreChoices!];
      if (firsts.some((c) => c.firstToken >= node.vocabSize)) return refuse('incompatible', `a choice's firstToken is outside the vocabulary of ${node.vocabSize}`);
      const lps = firsts.map((c) => (c.firstLogprobs ? { logprob: c.firstLogprobs.logprob, top: c.firstLogprobs.top.map(([id, logprob]) => ({ id, logprob })) } : undefined));
      if (reserve.sampling.logprobs !== undefined && lps.some((l) => !l)) return refuse('incompatible', 'the reserve asked for logprobs and a choice carries none');
      const reqs = choiceIds.map((id, i) => ({ ...req, id, sampling: choiceSampling(req.sampling, i) }));
      engine.admitPrefilledChoices(m.requestId, reqs, firsts.map((c) => c.firstToken), choiceIds.map((id) => streams.open(id, m.timing, m.promptLogprobs)), lps);
    }
  } catch (err) {
    for (const id of choiceIds) streams.discard(id); // admitPrefilled throws before it sends any event
    if (err instanceof SchedulerRejection) {
      const tooLarge = err.reason === 'too-large' || err.reason === 'reservation-too-small';
      return refuse(tooLarge ? 'too-large' : 'no-reservation', err.message);
    }
    if (err instanceof RangeError) return refuse('incompatible', err.message); // sampling settings the sampler refuses
    throw err;
  }
  ctx.handoffs.end(m.requestId, false);
  ctx.metrics.admitted.inc();
  return prefillDoneAckMessage({ requestId: m.requestId, ok: true });
}

/** The ids a prompt token set (the reserve's bitset) holds, below the vocabulary size. */
function tokenSetIds(set: Uint8Array, vocab: number): number[] {
  const ids: number[] = [];
  for (let i = 0; i < Math.min(vocab, set.length * 8); i++) if (set[i >> 3]! & (1 << (i & 7))) ids.push(i);
  return ids;
}

/** The prefill gave up: drop the reservation. A request already decoding is left alone (a stale message). */
export function handlePrefillFailed(ctx: ServiceContext, m: PrefillFailed): void {
  const live = ctx.handoffs.get(m.requestId);
  if (live === 'cancelled') return;
  if (live === 'no-reservation') {
    // Not held here: its lease ran out (the gateway was told then), it is decoding (its stream ends it), or this
    // process never reserved it: the node restarted since (kill -9 while the KV was on its way, back under the
    // same id). An error now would end a request the gateway can still re-route when it sees the restart.
    ctx.logger.info({ requestId: m.requestId, reason: m.reason }, 'prefill failed for a request this node does not hold: ignored');
    return;
  }
  ctx.engine.cancel(m.requestId);
  ctx.handoffs.end(m.requestId);
  ctx.failRequest(m.requestId, `prefill failed: ${m.reason}`);
  ctx.logger.info({ requestId: m.requestId, reason: m.reason }, 'prefill failed; reservation dropped');
}

/**
 * Ends the request in whatever state it is (reservation, waiting, decoding); its pages return to the pool.
 * The cancel-ack is the reply when the gateway sent it as a request (it retries until one comes).
 */
export function handleCancel(ctx: ServiceContext, m: Cancel): CancelAck {
  const ended = ctx.engine.cancel(m.requestId);
  ctx.handoffs.end(m.requestId);
  // the gateway may cancel a request this node never got or already finished: not worth an info line
  ctx.logger[ended ? 'info' : 'debug']({ requestId: m.requestId, reason: m.reason, ended }, 'cancel');
  return cancelAckMessage({ requestId: m.requestId, ended });
}

/** Another lease for each reservation the gateway still waits on (its prefill is queued or running). */
export function handleRenew(ctx: ServiceContext, m: Renew): void {
  let renewed = 0;
  for (const id of m.requestIds) if (ctx.engine.scheduler.renew(id)) renewed++;
  ctx.logger.debug({ requests: m.requestIds.length, renewed }, 'leases renewed');
}
