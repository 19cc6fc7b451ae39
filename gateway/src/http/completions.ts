// POST /v1/completions: a raw prompt (text or token ids), OpenAI's legacy text_completion shapes.
import type { RequestHandler } from 'express';
import { MAX_PROMPT_LOGPROB_PAIRS } from '@latentwire/protocol';
import { invalidParam, modelNotFound } from './api-error.js';
import { hasChoices, resolveChoices, serveChoices } from './choices.js';
import { clientGoneSignal } from './client-signal.js';
import { DEFAULT_COMPLETION_MAX_TOKENS, resolveGeneration } from './generation-params.js';
import { completionLogprobs, completionPromptLogprobs, joinCompletionLogprobs } from './logprobs.js';
import { completionPromptIds } from './prompt.js';
import { parseCompletionBody, type CompletionBody } from './request-schema.js';
import { serveCompletion, type EchoShape, type ResponseShape, type RouteContext } from './serve-completion.js';

const completionShape: ResponseShape = {
  idPrefix: 'cmpl',
  object: 'text_completion',
  chunkObject: 'text_completion',
  deltaChoice: (text, logprobs) => ({ index: 0, text, logprobs, finish_reason: null }),
  finishChoice: (reason) => ({ index: 0, text: '', logprobs: null, finish_reason: reason }),
  fullChoice: (text, reason, logprobs) => ({ index: 0, text, logprobs, finish_reason: reason }),
  formatLogprobs: completionLogprobs,
};

export function completionsHandler(ctx: RouteContext): RequestHandler {
  return async (req, res) => {
    const body = parseCompletionBody(req.body);
    if (body.model !== ctx.served.id) throw modelNotFound(body.model);
    const signal = clientGoneSignal(req, res);
    const backendLimit = ctx.backend.maxRequestTokens();
    const promptIds = await completionPromptIds({ model: ctx.served.folder, prompts: ctx.prompts, maxTokenBytes: ctx.maxTokenBytes, backendLimit, signal }, body.prompt);
    const resolved = resolveGeneration({
      requestId: res.locals['requestId'] as string,
      body,
      promptIds,
      promptParam: 'prompt',
      model: ctx.served.folder,
      backendLimit,
      promptLimit: ctx.backend.maxPromptTokens?.(),
      defaultMaxTokens: DEFAULT_COMPLETION_MAX_TOKENS,
      logprobs: body.logprobs ?? null,
    });
    // n > 1 / best_of: one prefill, n choices sharing the prompt's pages (choices.ts)
    const chosen = resolveChoices(body, resolved, ctx.maxChoices);
    const { choices } = chosen;
    let { gen } = chosen;
    if (body.echo === true && body.logprobs != null) {
      // echo with logprobs: the prompt's logprobs, computed by the prefill (its LM head at every position)
      if ((promptIds.length - 1) * (body.logprobs + 1) > MAX_PROMPT_LOGPROB_PAIRS) {
        throw invalidParam('echo', `Invalid value for 'echo': prompt logprobs of ${promptIds.length} tokens with ${body.logprobs} alternatives exceed this server's ` +
          `${MAX_PROMPT_LOGPROB_PAIRS} (token, logprob) pairs; use a shorter prompt, fewer logprobs, or echo without logprobs.`);
      }
      gen = { ...gen, request: { ...gen.request, promptLogprobs: body.logprobs } };
    }
    const shape = body.echo === true ? { ...completionShape, echo: echoOf(echoText(body.prompt, promptIds, ctx)) } : completionShape;
    if (hasChoices(choices)) await serveChoices(ctx, res, shape, gen, choices, signal);
    else await serveCompletion(ctx, res, shape, gen, signal);
  };
}

/** echo: the prompt as sent (a string), or its ids decoded (special tokens kept, as vLLM's echo). */
function echoText(prompt: CompletionBody['prompt'], promptIds: readonly number[], ctx: RouteContext): string {
  const one = Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] !== 'number' ? prompt[0]! : prompt;
  return typeof one === 'string' ? one : ctx.served.folder.tokenizer.decode(promptIds);
}

/** echo: the prompt's text, and with logprobs its logprobs (completionPromptLogprobs), in front of each choice's. */
function echoOf(text: string): EchoShape {
  return { text, promptLogprobs: completionPromptLogprobs, join: joinCompletionLogprobs };
}
