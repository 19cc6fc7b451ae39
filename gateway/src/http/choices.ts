// n > 1 and best_of: several completions of one prompt that share its prefill and its prompt pages. The
// backend runs one request of `candidates` choices (GenerationRequest.n); choice i samples with seed + i
// (choiceSampling), so it is exactly the solo request with that seed: `n = 3, seed = s` returns the solo
// completions of seeds s, s + 1 and s + 2, the same every time. Each choice has its own text, stop strings,
// max_tokens, logprobs and finish reason (a choice the gateway stops is cancelled alone); usage counts the
// prompt once and the completion tokens of every choice generated.
//
// best_of (completions): best_of candidates are generated (with logprobs, asked for or not) and the n with
// the highest cumulative logprob (the sum over each candidate's generated tokens, its stop token included)
// are returned, best first, as OpenAI and vLLM do; it cannot be streamed.
import type { Response } from 'express';
import { accessRecord } from './access-log.js';
import { invalidParam, toApiError } from './api-error.js';
import type { GenerationBackend, GenerationEvent, GenerationRequest } from './backend.js';
import type { ResolvedGeneration } from './generation-params.js';
import { TokenTexts } from './logprobs.js';
import type { ResponseShape, RouteContext, Usage } from './serve-completion.js';
import { SseWriter } from './sse.js';
import { generateTextFrom, type FinishReason, type LoggedToken, type TextDelta } from './text-generation.js';

/** MAX_N's default: most choices (n, or best_of candidates) one request may ask for. */
export const DEFAULT_MAX_CHOICES = 16;

export interface ResolvedChoices {
  /** Choices returned (n). */
  readonly n: number;
  /** Choices generated: best_of, else n. */
  readonly candidates: number;
  /** Whether the response carries logprobs (best_of asks the backend for them regardless). */
  readonly returnLogprobs: boolean;
}

/**
 * n and best_of, checked: OpenAI-style 400s naming the field. `maxChoices`: MAX_N. Returns the generation to
 * run (best_of > n asks the backend for logprobs, top 0, when the client did not) and the choices.
 */
export function resolveChoices(
  body: { readonly n?: number | null | undefined; readonly best_of?: number | null | undefined; readonly stream?: boolean | null | undefined },
  gen: ResolvedGeneration,
  maxChoices: number = DEFAULT_MAX_CHOICES,
): { gen: ResolvedGeneration; choices: ResolvedChoices } {
  const n = body.n ?? 1;
  if (n > maxChoices) throw invalidParam('n', `Invalid value for 'n': at most ${maxChoices} choices per request on this server, got ${n}.`);
  const bestOf = body.best_of ?? n;
  if (bestOf < n) throw invalidParam('best_of', `Invalid value for 'best_of': best_of (${bestOf}) must be greater than or equal to n (${n}).`);
  if (bestOf > maxChoices) throw invalidParam('best_of', `Invalid value for 'best_of': at most ${maxChoices} candidates per request on this server, got ${bestOf}.`);
  if (bestOf > n && body.stream === true) throw invalidParam('best_of', "Invalid value for 'best_of': best_of cannot be used with 'stream' (the best candidates are known only at the end).");
  const returnLogprobs = gen.request.sampling.logprobs !== undefined;
  const sampling = bestOf > n && !returnLogprobs ? { ...gen.request.sampling, logprobs: 0 } : gen.request.sampling;
  return {
    gen: { ...gen, request: { ...gen.request, sampling, ...(bestOf > 1 ? { n: bestOf } : {}) } },
    choices: { n, candidates: bestOf, returnLogprobs },
  };
}

/** Whether a request takes the choices path (serveChoices) rather than serveCompletion. */
export const hasChoices = (c: ResolvedChoices): boolean => c.candidates > 1;

/**
 * One backend request of n choices split into n event sources, one per choice, for generateTextFrom. Choice
 * i's source ends with its own finish reason; the signal it is given aborts that choice alone (the backend
 * cancels it); the backend request starts with the first source read. Every source rethrows a backend
 * failure. Sums each choice's logprobs as they are read (best_of's ranking).
 */
export class ChoiceDemux {
  readonly cumulative: number[];
  private readonly queues: GenerationEvent[][];
  private readonly done: boolean[];
  private readonly wakers: ((() => void) | undefined)[];
  private readonly choiceCtrls: AbortController[];
  private failure: { err: unknown } | undefined;
  private started = false;
  private readonly counted: number[];

  constructor(
    private readonly backend: GenerationBackend,
    private readonly request: GenerationRequest,
    readonly n: number,
    private readonly clientSignal: AbortSignal,
  ) {
    this.cumulative = new Array<number>(n).fill(0);
    this.counted = new Array<number>(n).fill(0);
    this.queues = Array.from({ length: n }, () => []);
    this.done = new Array<boolean>(n).fill(false);
    this.wakers = new Array(n).fill(undefined);
    this.choiceCtrls = Array.from({ length: n }, () => new AbortController());
  }

  source(i: number): (signal: AbortSignal) => AsyncIterable<GenerationEvent> {
    return (signal) => {
      const ctrl = this.choiceCtrls[i]!;
      if (signal.aborted) ctrl.abort(signal.reason);
      else signal.addEventListener('abort', () => {
        ctrl.abort(signal.reason);
        this.wake(i);
      }, { once: true });
      this.start();
      return this.events(i, signal);
    };
  }

  private async *events(i: number, signal: AbortSignal): AsyncGenerator<GenerationEvent, void, undefined> {
    for (;;) {
      const e = this.queues[i]!.shift();
      if (e) {
        this.count(i, e);
        yield e;
        if (e.finishReason) return;
        continue;
      }
      if (this.failure) throw this.failure.err;
      if (this.done[i] || signal.aborted) return;
      await new Promise<void>((resolve) => (this.wakers[i] = resolve));
    }
  }

  private count(i: number, e: GenerationEvent): void {
    const take = Math.max(0, Math.min(e.tokens.length, this.request.maxTokens - this.counted[i]!));
    this.counted[i]! += take;
    for (let j = 0; j < take; j++) this.cumulative[i]! += e.logprobs?.[j]?.logprob ?? 0;
  }

  private start(): void {
    if (this.started) return;
    this.started = true;
    void this.pump();
  }

  private async pump(): Promise<void> {
    try {
      for await (const e of this.backend.generate(this.request, this.clientSignal, this.choiceCtrls.map((c) => c.signal))) {
        const i = e.choice ?? 0;
        if (i < 0 || i >= this.n || this.done[i]) continue;
        this.queues[i]!.push(e);
        if (e.finishReason) this.done[i] = true;
        this.wake(i);
      }
    } catch (err) {
      this.failure = { err };
    } finally {
      this.done.fill(true);
      for (let i = 0; i < this.n; i++) this.wake(i);
    }
  }

  private wake(i: number): void {
    const w = this.wakers[i];
    this.wakers[i] = undefined;
    w?.();
  }
}

interface Finished {
  readonly index: number;
  readonly text: string;
  readonly logged: LoggedToken[];
  readonly last: TextDelta;
}

/** serveCompletion for n > 1 or best_of (one JSON body, or an SSE stream whose choice chunks carry their index). */
export async function serveChoices(ctx: RouteContext, res: Response, shape: ResponseShape, gen: ResolvedGeneration, choices: ResolvedChoices, signal: AbortSignal): Promise<void> {
  const { requestId, promptIds } = gen.request;
  const log = ctx.logger.child({ requestId, n: choices.n, candidates: choices.candidates });
  const startedAt = performance.now();
  const record = accessRecord(res);
  record?.generating(promptIds.length);
  const request = record ? { ...gen.request, trace: record } : gen.request;
  const k = choices.candidates;
  const demux = new ChoiceDemux(ctx.backend, request, k, signal);
  const tokenizer = ctx.served.folder.tokenizer;
  const gens = Array.from({ length: k }, (_, i) => generateTextFrom(demux.source(i), { ...gen, request }, tokenizer, signal));
  const envelope = {
    id: `${shape.idPrefix}-${requestId}`,
    created: Math.floor(Date.now() / 1000),
    model: ctx.served.id,
    system_fingerprint: ctx.served.systemFingerprint,
  };
  const completion = new Array<number>(k).fill(0);
  const usage = (): Usage => {
    const c = completion.reduce((a, b) => a + b, 0);
    return { prompt_tokens: promptIds.length, completion_tokens: c, total_tokens: promptIds.length + c };
  };
  const texts = new TokenTexts(tokenizer);
  const offsets = Array.from({ length: k }, () => ({ value: 0 }));
  const logprobsOf = (i: number, tokens: readonly LoggedToken[]): object | null => (choices.returnLogprobs ? shape.formatLogprobs(tokens, texts, offsets[i]!) : null);
  const indexed = (i: number, choice: object): object => ({ ...choice, index: i });
  const clientGone = (err?: unknown): void => {
    record?.finish('cancelled');
    log.info({ err, ms: Math.round(performance.now() - startedAt) }, 'client disconnected; request cancelled');
  };
  const finished = (reasons: readonly FinishReason[]): void => {
    record?.finish(reasons.every((r) => r === 'length') ? 'length' : 'stop');
    log.debug({ stream: gen.stream, ...usage(), finishReasons: reasons, ms: Math.round(performance.now() - startedAt) }, 'request finished');
  };
  /** Choice i's next delta, tagged; undefined once the client left. */
  const next = async (i: number): Promise<{ i: number; d: TextDelta | undefined }> => {
    const r = await gens[i]!.next();
    if (r.done) return { i, d: undefined };
    completion[i] = r.value.completionTokens;
    record?.tokens(completion.reduce((a, b) => a + b, 0));
    return { i, d: r.value };
  };

  let sse: SseWriter | undefined;
  try {
    const echo = shape.echo;
    // echo with logprobs: each choice's first delta carries the prompt's; its logprobs go first (offsets follow)
    const echoLogprobs: (object | null)[] = new Array<object | null>(k).fill(null);
    const noteEcho = (i: number, d: TextDelta, firstOfChoice: boolean): void => {
      if (echo && choices.returnLogprobs && firstOfChoice) echoLogprobs[i] = echo.promptLogprobs(promptIds, d.promptLogprobs, texts, offsets[i]!);
    };
    const withEcho = (i: number, lp: object | null): object | null => (echoLogprobs[i] && lp ? echo!.join(echoLogprobs[i]!, lp) : lp);
    if (!gen.stream) {
      const collect = async (i: number): Promise<Finished | undefined> => {
        let text = echo?.text ?? '';
        const logged: LoggedToken[] = [];
        for (let firstOfChoice = true; ; firstOfChoice = false) {
          const { d } = await next(i);
          if (!d) return undefined;
          noteEcho(i, d, firstOfChoice);
          text += d.text;
          logged.push(...(d.logprobs ?? []));
          if (d.finishReason) return { index: i, text, logged, last: d };
        }
      };
      const all = await Promise.all(gens.map((_, i) => collect(i)));
      if (all.some((f) => f === undefined)) return clientGone();
      let picked = all as Finished[];
      // best_of: the n candidates of highest cumulative logprob, best first (a stable sort keeps index order on ties)
      if (k > choices.n) picked = [...picked].sort((a, b) => demux.cumulative[b.index]! - demux.cumulative[a.index]!).slice(0, choices.n);
      res.json({
        ...envelope,
        object: shape.object,
        choices: picked.map((f, j) => indexed(j, shape.fullChoice(f.text, f.last.finishReason!, withEcho(f.index, logprobsOf(f.index, f.logged))))),
        usage: usage(),
      });
      return finished(picked.map((f) => f.last.finishReason!));
    }

    // the HTTP status waits for the first delta of any choice (or the backend's rejection)
    const pending = new Map<number, Promise<{ i: number; d: TextDelta | undefined }>>();
    const pull = (i: number): void => {
      const p = next(i);
      p.catch(() => undefined);
      pending.set(i, p);
    };
    gens.forEach((_, i) => pull(i));
    let first = await Promise.race(pending.values());
    sse = new SseWriter(res);
    sse.open();
    const chunk = (choice: object | null, u: Usage | null = null): object => ({
      ...envelope,
      object: shape.chunkObject,
      choices: choice ? [choice] : [],
      ...(gen.includeUsage ? { usage: u } : {}),
    });
    if (shape.openingChoice) for (let i = 0; i < k; i++) await sse.send(chunk(indexed(i, shape.openingChoice)));
    const reasons: FinishReason[] = [];
    const started = new Array<boolean>(k).fill(false);
    for (;;) {
      const { i, d } = first;
      pending.delete(i);
      if (!d) return clientGone();
      if (echo && !started[i]) {
        noteEcho(i, d, true);
        await sse.send(chunk(indexed(i, shape.deltaChoice(echo.text, echoLogprobs[i]!))));
      }
      started[i] = true;
      const logged = d.logprobs ?? [];
      if (d.text !== '' || (choices.returnLogprobs && logged.length > 0)) await sse.send(chunk(indexed(i, shape.deltaChoice(d.text, logprobsOf(i, logged)))));
      if (d.finishReason) {
        reasons.push(d.finishReason);
        await sse.send(chunk(indexed(i, shape.finishChoice(d.finishReason))));
      } else pull(i);
      if (pending.size === 0) break;
      first = await Promise.race(pending.values());
    }
    if (gen.includeUsage) await sse.send(chunk(null, usage()));
    await sse.done();
    finished(reasons);
  } catch (err) {
    if (signal.aborted) return clientGone(err);
    if (!sse) throw err;
    record?.finish('error');
    const apiError = toApiError(err, requestId);
    log.error({ err }, 'generation failed mid-stream');
    await sse.send(apiError.body());
    await sse.done();
  } finally {
    // each choice's generator cancels its choice if it is still running (a no-op after a normal finish); not
    // awaited: one still waiting for its next event ends when that settles
    for (const g of gens) void g.return(undefined).catch(() => undefined);
  }
}
