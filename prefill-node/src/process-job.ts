// A prefill job's lifecycle on the prefill node (the BullMQ processor):
//   1. Validate the job data (parsePrefillJob); invalid → fail at once, no retry (UnrecoverableError).
//   2. Skip it quietly if the gateway cancelled the request (job completes with outcome 'cancelled').
//      While NATS is reconnecting (a server restart), wait for it (at most NATS_WAIT_MS, within the deadline)
//      rather than fail every attempt at once.
//   3. Check it against this node: model fingerprint, cache layout (the decode node's layoutKey for this
//      model's latent width), prompt ids within the vocabulary and context, deadline not passed;
//      any mismatch → prefill-failed to the decode node, fail without retry.
//   4. Prefill on the GPU, streaming: as each layer is computed its KV, quantized into the decode node's
//      page layout, goes out as kv-chunk requests under the destination's byte window; the first token is
//      sampled on the GPU with the job's sampling params.
//   5. After every kv-ack, send prefill-done (firstToken and the job's fields) and wait for its ack. A job of
//      n > 1 choices samples n first tokens from the same logits (choice i with seed + i) and sends the
//      prompt's KV once: the decode node's choices share its pages.
//   6. Failures: a cancel (broadcast) or a decode node answering 'cancelled'/'no-reservation' ends the job
//      quietly; a refusal retrying can't fix fails it without retry (+ prefill-failed); anything else
//      (ack timeout, malformed reply, GPU error) throws so BullMQ retries it with the job's backoff, and the
//      last attempt (attemptsMade + 1 >= opts.attempts) first sends prefill-failed so the node frees the pages
//      (after waiting for NATS, as above: unsent, the gateway would only learn of it from its idle timeout).
// The gateway sets attempts and backoff when it enqueues (e.g. attempts 3, exponential backoff); without
// them BullMQ makes one attempt, which is then the last.
import { UnrecoverableError, type Job } from 'bullmq';
import type { Logger } from 'pino';
import type { PrefillModel } from '@latentwire/gpu/prefill';
import { parseLatentLayoutKey, parsePrefillJob, prefillDoneMessage, WireError, type PrefillJob } from '@latentwire/protocol';
import type { LatentKvLayout } from '@latentwire/protocol';
import { GrammarError, type GrammarCache, type GrammarSpec } from '@latentwire/model';
import type { Cancellations } from './cancellations.js';
import { PrefillRefusedError, RequestGoneError } from './errors.js';
import { KvSender, sendPrefillFailed, type KvSendContext } from './kv-sender.js';
import type { JobOutcome } from './metrics.js';

export interface JobContext extends KvSendContext {
  readonly model: PrefillModel;
  readonly fingerprint: string;
  readonly cancellations: Cancellations;
  readonly cancelSubject: string;
  /** Grammars over this model's vocabulary (constrained decoding); jobs with a grammar are refused without. */
  readonly grammars?: GrammarCache | undefined;
  /** Longest prompt this node prefills (below the model's context when the device cannot run longer ones). */
  readonly maxPromptTokens?: number | undefined;
  /** Whether the NATS connection is up now (false from a disconnect to the reconnect); default: always. */
  readonly natsUp?: () => boolean;
}

/** What a job that ends without error returns (BullMQ stores it as the job's return value). */
export interface PrefillJobResult {
  readonly outcome: Extract<JobOutcome, 'completed' | 'cancelled' | 'gone'>;
  readonly requestId: string;
  readonly firstToken?: number;
}

export async function processPrefillJob(ctx: JobContext, job: Job): Promise<PrefillJobResult> {
  const started = performance.now();
  const startedAt = Date.now();
  const count = (outcome: JobOutcome) => {
    ctx.metrics.jobs.inc({ outcome });
    ctx.metrics.jobSeconds.observe({ outcome }, (performance.now() - started) / 1000);
  };
  let data: PrefillJob;
  try {
    data = parsePrefillJob(job.data);
  } catch (err) {
    if (!(err instanceof WireError)) throw err;
    count('rejected');
    ctx.logger.warn({ jobId: job.id, err: err.message }, 'invalid prefill job');
    throw new UnrecoverableError(`prefill job ${job.id}: ${err.message}`);
  }
  const log = ctx.logger.child({ jobId: job.id, requestId: data.requestId, decodeNodeId: data.decodeNodeId, attempt: job.attemptsMade + 1 });
  const tracked = ctx.cancellations.track(data.requestId, ctx.cancelSubject);
  try {
    if (tracked.signal.aborted) throw tracked.signal.reason; // cancelled before it was picked up
    // NATS reconnecting (a server restart): every send would fail at once and burn the job's attempts
    if (await untilConnected(ctx, Math.min(NATS_WAIT_MS, data.deadline - Date.now()), tracked.signal)) log.info('waited for NATS to reconnect');
    if (tracked.signal.aborted) throw tracked.signal.reason;
    const layout = checkJob(ctx, data, Date.now());
    const mask = firstTokenMask(ctx, data);
    const sender = new KvSender(ctx, { ...data, layout, tokens: data.promptIds.length }, tracked.signal);
    const forwardStart = performance.now();
    const out = await ctx.model.prefill(data.promptIds, {
      stream: { layout, onLayer: (layer, pages) => sender.sendLayer(layer, pages) },
      // the completion's first token, under the grammar's mask; a resumed request's generated tail counts as output
      sample: {
        ...data.sampling, counter: data.sampling.counterStart ?? 0, ...(mask ? { mask } : {}),
        ...(data.resumeTokens?.length ? { outputIds: data.resumeTokens } : {}),
      },
      // n > 1 choices: one first token per choice from the same logits, choice i with seed + i (choiceSampling)
      ...(data.n !== undefined && data.n > 1 ? { choices: data.n } : {}),
      // echo with logprobs: every prompt token's logprob (the LM head then runs at every position)
      ...(data.promptLogprobs !== undefined ? { promptLogprobs: data.promptLogprobs } : {}),
    });
    out.release(); // the latent KV is on its way; only the sampled token is still needed
    const firstToken = out.token!;
    const forwardEnd = performance.now();
    await sender.flush(); // every kv-ack in: the transfer's tail is measured apart from prefill-done's round trip
    const timing = {
      queueMs: Math.max(0, startedAt - job.timestamp), // job.timestamp: the gateway's clock at enqueue
      prefillMs: forwardEnd - forwardStart,
      kvTransferMs: performance.now() - forwardEnd,
    };
    const lp = out.logprobs;
    const wireLp = (l: NonNullable<typeof lp>) => ({ logprob: l.logprob, top: l.top.map((e) => [e.id, e.logprob] as const) });
    const more = out.choices?.slice(1).map((c) => ({ firstToken: c.token, ...(c.logprobs ? { firstLogprobs: wireLp(c.logprobs) } : {}) }));
    await sender.sendDone(prefillDoneMessage({
      requestId: data.requestId, promptTokens: data.promptIds.length, layers: ctx.model.cfg.numLayers, firstToken,
      layoutKey: data.layoutKey, fingerprint: data.fingerprint, timing,
      ...(lp ? { firstLogprobs: wireLp(lp) } : {}),
      ...(more && more.length > 0 ? { moreChoices: more } : {}),
      ...(out.promptLogprobs ? { promptLogprobs: out.promptLogprobs.map(wireLp) } : {}),
    }));
    ctx.metrics.forwardSeconds.observe(timing.prefillMs / 1000);
    ctx.metrics.queueWaitSeconds.observe(timing.queueMs / 1000);
    ctx.metrics.promptTokens.inc(data.promptIds.length);
    count('completed');
    log.info({ tokens: data.promptIds.length, ms: Math.round(performance.now() - started) }, 'prefill done');
    return { outcome: 'completed', requestId: data.requestId, firstToken };
  } catch (err) {
    if (err instanceof RequestGoneError) {
      const outcome = err.source === ctx.cancelSubject ? 'cancelled' : 'gone';
      count(outcome);
      log.info({ reason: err.reason, source: err.source }, 'request gone: prefill stopped');
      return { outcome, requestId: data.requestId };
    }
    const refused = err instanceof PrefillRefusedError;
    const last = refused || job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
    count(refused ? 'rejected' : last ? 'failed' : 'retry');
    log.warn({ err, retry: !last }, refused ? 'prefill refused' : last ? 'prefill failed on its last attempt' : 'prefill attempt failed');
    if (last) {
      const message = err instanceof Error ? err.message : String(err);
      // unsent, the gateway would only learn of it from its idle timeout
      await untilConnected(ctx, NATS_WAIT_MS, tracked.signal);
      await sendPrefillFailed(ctx, data, message);
    }
    if (refused) throw new UnrecoverableError((err as Error).message);
    throw err;
  } finally {
    tracked.untrack();
  }
}

/** How long a job waits for NATS to come back (a server restart) before it runs anyway (and fails). */
export const NATS_WAIT_MS = 10_000;

/**
 * Waits while the NATS connection is down (disconnected, or reconnecting with no server INFO yet), at most `ms`
 * or until `signal`; true if it had to wait.
 */
async function untilConnected(ctx: Pick<JobContext, 'nc' | 'natsUp'>, ms: number, signal: AbortSignal): Promise<boolean> {
  const end = performance.now() + ms;
  let waited = false;
  const down = () => ctx.natsUp?.() === false || ctx.nc.info === undefined;
  while (down() && !ctx.nc.isClosed() && !signal.aborted && performance.now() < end) {
    waited = true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return waited;
}

/** Step 3: throws PrefillRefusedError unless this node can serve the job; returns the layout to write. */
export function checkJob(ctx: Pick<JobContext, 'model' | 'fingerprint' | 'maxPromptTokens'>, job: PrefillJob, now: number): LatentKvLayout {
  const cfg = ctx.model.cfg;
  if (job.fingerprint !== ctx.fingerprint) {
    throw new PrefillRefusedError(`job for model ${job.fingerprint.slice(0, 16)}… but this node serves ${ctx.fingerprint.slice(0, 16)}…`);
  }
  const layout = parseLatentLayoutKey(job.layoutKey)!; // parsePrefillJob checked it parses
  if (layout.kvLoraRank !== cfg.kvLoraRank || layout.ropeDim !== cfg.qkRopeHeadDim) {
    throw new PrefillRefusedError(`layout ${job.layoutKey} does not fit this model (r${cfg.kvLoraRank}+${cfg.qkRopeHeadDim})`);
  }
  if (job.promptIds.length > cfg.maxPositionEmbeddings) {
    throw new PrefillRefusedError(`prompt of ${job.promptIds.length} tokens exceeds the model's ${cfg.maxPositionEmbeddings}`);
  }
  if (ctx.maxPromptTokens !== undefined && job.promptIds.length > ctx.maxPromptTokens) {
    throw new PrefillRefusedError(`prompt of ${job.promptIds.length} tokens exceeds the ${ctx.maxPromptTokens} this node's device can prefill`);
  }
  const bad = job.promptIds.find((id) => id >= cfg.vocabSize);
  if (bad !== undefined) throw new PrefillRefusedError(`token id ${bad} outside the vocabulary [0, ${cfg.vocabSize})`);
  if (job.deadline <= now) throw new PrefillRefusedError(`deadline passed ${now - job.deadline} ms before the job started`);
  return layout;
}

/**
 * Constrained decoding: the grammar's mask for the completion's first token (the decode node checks the token
 * against the same grammar); PrefillRefusedError for a grammar this node cannot compile. A resumed request's
 * state first advances over the tokens it already generated (resumeTokens; its grammar's maxTokens is then
 * what is left), so a token sequence the grammar does not allow is refused too.
 */
export function firstTokenMask(ctx: Pick<JobContext, 'grammars'>, job: PrefillJob): Uint32Array | null {
  const g = job.sampling.grammar;
  if (!g) return null;
  if (!ctx.grammars) throw new PrefillRefusedError('the job has a grammar, but this node has no tokenizer to compile it');
  try {
    const state = ctx.grammars.get({ root: g.root } as GrammarSpec).start();
    for (const id of job.resumeTokens ?? []) state.advance(id);
    return state.mask(g.maxTokens ?? 0x7fffffff);
  } catch (err) {
    if (err instanceof GrammarError) throw new PrefillRefusedError(err.message);
    throw err;
  }
}
