// POST /v1/completions: a raw prompt (text or token ids), OpenAI's legacy text_completion shapes.
import type { RequestHandler } from 'express';
import { modelNotFound } from './api-error.js';
import { clientGoneSignal } from './client-signal.js';
import { DEFAULT_COMPLETION_MAX_TOKENS, resolveGeneration } from './generation-params.js';
import { completionLogprobs } from './logprobs.js';
import { completionPromptIds } from './prompt.js';
import { parseCompletionBody } from './request-schema.js';
import { serveCompletion, type ResponseShape, type RouteContext } from './serve-completion.js';

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
    const gen = resolveGeneration({
      requestId: res.locals['requestId'] as string,
      body,
      promptIds,
      promptParam: 'prompt',
      model: ctx.served.folder,
      backendLimit,
      defaultMaxTokens: DEFAULT_COMPLETION_MAX_TOKENS,
      logprobs: body.logprobs ?? null,
    });
    await serveCompletion(ctx, res, completionShape, gen, signal);
  };
}
