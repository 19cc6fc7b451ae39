// POST /v1/chat/completions: messages rendered with the model's chat template, OpenAI's response shapes.
import type { RequestHandler } from 'express';
import { modelNotFound } from './api-error.js';
import { hasChoices, resolveChoices, serveChoices } from './choices.js';
import { clientGoneSignal } from './client-signal.js';
import { DEFAULT_CHAT_MAX_TOKENS, resolveGeneration } from './generation-params.js';
import { chatLogprobs } from './logprobs.js';
import { chatPromptIds, chatRenderFlags } from './prompt.js';
import { parseChatBody } from './request-schema.js';
import { serveCompletion, type ResponseShape, type RouteContext } from './serve-completion.js';

const chatShape: ResponseShape = {
  idPrefix: 'chatcmpl',
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  openingChoice: { index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null },
  deltaChoice: (text, logprobs) => ({ index: 0, delta: { content: text }, logprobs, finish_reason: null }),
  finishChoice: (reason) => ({ index: 0, delta: {}, logprobs: null, finish_reason: reason }),
  fullChoice: (text, reason, logprobs) => ({ index: 0, message: { role: 'assistant', content: text, refusal: null }, logprobs, finish_reason: reason }),
  formatLogprobs: (tokens, texts) => chatLogprobs(tokens, texts),
};

export function chatCompletionsHandler(ctx: RouteContext): RequestHandler {
  return async (req, res) => {
    const body = parseChatBody(req.body);
    if (body.model !== ctx.served.id) throw modelNotFound(body.model);
    const signal = clientGoneSignal(req, res);
    const backendLimit = ctx.backend.maxRequestTokens();
    const promptIds = await chatPromptIds({ model: ctx.served.folder, prompts: ctx.prompts, maxTokenBytes: ctx.maxTokenBytes, backendLimit, signal }, body.messages, chatRenderFlags(body));
    const resolved = resolveGeneration({
      requestId: res.locals['requestId'] as string,
      body,
      promptIds,
      promptParam: 'messages',
      model: ctx.served.folder,
      backendLimit,
      defaultMaxTokens: ctx.defaultMaxTokens ?? DEFAULT_CHAT_MAX_TOKENS,
      logprobs: body.logprobs === true ? (body.top_logprobs ?? 0) : null,
    });
    // n > 1 / best_of: one prefill, n choices sharing the prompt's pages (choices.ts)
    const { gen, choices } = resolveChoices(body, resolved, ctx.maxChoices);
    if (hasChoices(choices)) await serveChoices(ctx, res, chatShape, gen, choices, signal);
    else await serveCompletion(ctx, res, chatShape, gen, signal);
  };
}
