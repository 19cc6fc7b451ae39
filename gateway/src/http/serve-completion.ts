// What /v1/chat/completions and /v1/completions share once a request is parsed: run the generation, then
// answer with one JSON body or an SSE stream. Each endpoint only supplies its response shape.
//
// The HTTP status is chosen after the backend's first event (or its rejection), so a BackendRejection
// before any token is a real 429/503 even for a stream. Once a stream is open, a failure is sent as an
// OpenAI error chunk (the official clients raise it) followed by [DONE].
import type { Response } from 'express';
import type { Logger } from 'pino';
import { accessRecord } from './access-log.js';
import { toApiError } from './api-error.js';
import type { GenerationBackend, TokenLogprob } from './backend.js';
import type { ResolvedGeneration } from './generation-params.js';
import type { PromptPool } from '../prompt/index.js';
import type { ServedModel } from './served-model.js';
import { SseWriter } from './sse.js';
import { generateText, type FinishReason, type LoggedToken, type TextDelta } from './text-generation.js';
import { TokenTexts } from './logprobs.js';

export interface RouteContext {
  readonly served: ServedModel;
  readonly backend: GenerationBackend;
  readonly logger: Logger;
  readonly defaultMaxTokens?: number | undefined;
  /** Renders and tokenizes prompts off the event loop. */
  readonly prompts: PromptPool;
  /** maxTokenBytes() of the model's tokenizer, for the length check that needs no tokenizing. */
  readonly maxTokenBytes: number;
  /** MAX_N: most choices (n, best_of) per request; default DEFAULT_MAX_CHOICES (choices.ts). */
  readonly maxChoices?: number | undefined;
}

/** The choice objects of one endpoint, without the envelope (id, object, created, model, usage). */
export interface ResponseShape {
  readonly idPrefix: string;
  /** `object` of a whole response and of a stream chunk. */
  readonly object: string;
  readonly chunkObject: string;
  /** A choice sent before any text (chat's `delta.role`), if the endpoint has one. */
  readonly openingChoice?: object;
  /** `logprobs`: the choice's logprobs object (formatLogprobs), or null when not asked for. */
  deltaChoice(text: string, logprobs: object | null): object;
  /** The last choice of a stream: no text, only finish_reason. */
  finishChoice(reason: FinishReason): object;
  fullChoice(text: string, reason: FinishReason, logprobs: object | null): object;
  /**
   * The endpoint's logprobs object for these tokens. `texts` renders token ids; `offset` is the text offset of
   * the first token (completions' text_offset), advanced past them.
   */
  formatLogprobs(tokens: readonly LoggedToken[], texts: TokenTexts, offset: { value: number }): object;
  /** Completions' echo (echoOf): the prompt's text, and with logprobs its logprobs, in front of each choice's. */
  readonly echo?: EchoShape;
}

export interface EchoShape {
  readonly text: string;
  /** The prompt's logprobs object (entries: the backend's promptLogprobs), advancing `offset` past the prompt. */
  promptLogprobs(promptIds: readonly number[], entries: readonly TokenLogprob[] | undefined, texts: TokenTexts, offset: { value: number }): object;
  /** The prompt's logprobs object, then the completion's. */
  join(prompt: object, completion: object): object;
}

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

/** `signal`: clientGoneSignal(req, res), made by the handler before the prompt is tokenized. */
export async function serveCompletion(ctx: RouteContext, res: Response, shape: ResponseShape, gen: ResolvedGeneration, signal: AbortSignal): Promise<void> {
  const { requestId, promptIds } = gen.request;
  const log = ctx.logger.child({ requestId });
  const startedAt = performance.now();
  const record = accessRecord(res);
  record?.generating(promptIds.length);
  const traced = record ? { ...gen, request: { ...gen.request, trace: record } } : gen;
  const deltas = generateText(ctx.backend, traced, ctx.served.folder.tokenizer, signal);
  const envelope = {
    id: `${shape.idPrefix}-${requestId}`,
    created: Math.floor(Date.now() / 1000),
    model: ctx.served.id,
    system_fingerprint: ctx.served.systemFingerprint,
  };
  const usage = (d: TextDelta): Usage => ({ prompt_tokens: promptIds.length, completion_tokens: d.completionTokens, total_tokens: promptIds.length + d.completionTokens });
  const finished = (d: TextDelta): void => {
    record?.finish(d.finishReason ?? 'error');
    log.debug({ stream: gen.stream, ...usage(d), finishReason: d.finishReason, ms: Math.round(performance.now() - startedAt) }, 'request finished');
  };
  const clientGone = (err?: unknown): void => {
    record?.finish('cancelled');
    log.info({ err, ms: Math.round(performance.now() - startedAt) }, 'client disconnected; request cancelled');
  };

  /** The next delta, its tokens noted (TTFT, inter-token latency) as soon as it arrives. */
  const next = async (): Promise<IteratorResult<TextDelta, void>> => {
    const r = await deltas.next();
    if (!r.done) record?.tokens(r.value.completionTokens);
    return r;
  };

  const wantLogprobs = gen.request.sampling.logprobs !== undefined;
  const texts = new TokenTexts(ctx.served.folder.tokenizer);
  const offset = { value: 0 };
  const logprobsOf = (tokens: readonly LoggedToken[]): object | null => (wantLogprobs ? shape.formatLogprobs(tokens, texts, offset) : null);

  let sse: SseWriter | undefined;
  try {
    const first = await next();
    if (first.done) return clientGone();
    let d = first.value;
    // echo: the prompt in front (its logprobs first, so the completion's text offsets follow it)
    const echo = shape.echo;
    const echoLogprobs = echo && wantLogprobs ? echo.promptLogprobs(promptIds, d.promptLogprobs, texts, offset) : null;
    if (!gen.stream) {
      let text = echo?.text ?? '';
      const logged: LoggedToken[] = [];
      for (;;) {
        text += d.text;
        logged.push(...(d.logprobs ?? []));
        if (d.finishReason) break;
        const n = await next();
        if (n.done) return clientGone();
        d = n.value;
      }
      const lp = logprobsOf(logged);
      res.json({ ...envelope, object: shape.object, choices: [shape.fullChoice(text, d.finishReason, echoLogprobs && lp ? echo!.join(echoLogprobs, lp) : lp)], usage: usage(d) });
      return finished(d);
    }

    sse = new SseWriter(res);
    sse.open();
    // With include_usage every chunk carries `usage: null` and one more chunk at the end carries the numbers.
    const chunk = (choices: object[], u: Usage | null = null): object => ({
      ...envelope,
      object: shape.chunkObject,
      choices,
      ...(gen.includeUsage ? { usage: u } : {}),
    });
    if (shape.openingChoice) await sse.send(chunk([shape.openingChoice]));
    if (echo) await sse.send(chunk([shape.deltaChoice(echo.text, echoLogprobs)]));
    for (;;) {
      // a delta's logprobs go with its text; tokens whose text is held back (a partial character, a possible
      // stop string) still send theirs, with empty text
      const logged = d.logprobs ?? [];
      if (d.text !== '' || (wantLogprobs && logged.length > 0)) await sse.send(chunk([shape.deltaChoice(d.text, logprobsOf(logged))]));
      if (d.finishReason) break;
      const n = await next();
      if (n.done) return clientGone();
      d = n.value;
    }
    await sse.send(chunk([shape.finishChoice(d.finishReason)]));
    if (gen.includeUsage) await sse.send(chunk([], usage(d)));
    await sse.done();
    finished(d);
  } catch (err) {
    if (signal.aborted) return clientGone(err);
    if (!sse) throw err; // nothing sent yet: the app's error handler answers with the right status
    record?.finish('error');
    const apiError = toApiError(err, requestId);
    log.error({ err }, 'generation failed mid-stream');
    await sse.send(apiError.body());
    await sse.done();
  } finally {
    // Cancels the backend if we leave early (client gone, error); a no-op after a normal finish.
    await deltas.return(undefined);
  }
}
