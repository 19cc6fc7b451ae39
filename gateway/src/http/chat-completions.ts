// POST /v1/chat/completions: messages rendered with the model's chat template, OpenAI's response shapes.
import type { RequestHandler } from 'express';
import { invalidParam, modelNotFound } from './api-error.js';
import { hasChoices, resolveChoices, serveChoices } from './choices.js';
import { clientGoneSignal } from './client-signal.js';
import { DEFAULT_CHAT_MAX_TOKENS, resolveGeneration } from './generation-params.js';
import { chatLogprobs } from './logprobs.js';
import { chatPromptIds, chatRenderFlags } from './prompt.js';
import { parseChatBody } from './request-schema.js';
import { serveCompletion, type ResponseShape, type RouteContext } from './serve-completion.js';
import { structuredChat, toolCallShape, withGrammar } from '../structured/chat-structured.js';

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
    // response_format and tools: the messages to render, the grammar, tool-call parsing (400s first)
    const structured = structuredChat(body, ctx.served.folder.chatTemplate);
    const signal = clientGoneSignal(req, res);
    const backendLimit = ctx.backend.maxRequestTokens();
    const promptIds = await chatPromptIds({ model: ctx.served.folder, prompts: ctx.prompts, maxTokenBytes: ctx.maxTokenBytes, backendLimit, signal }, structured.messages, chatRenderFlags(body), structured.templateTools);
    const resolved = withGrammar(resolveGeneration({
      requestId: res.locals['requestId'] as string,
      body,
      promptIds,
      promptParam: 'messages',
      model: ctx.served.folder,
      backendLimit,
      promptLimit: ctx.backend.maxPromptTokens?.(),
      defaultMaxTokens: ctx.defaultMaxTokens ?? DEFAULT_CHAT_MAX_TOKENS,
      logprobs: body.logprobs === true ? (body.top_logprobs ?? 0) : null,
    }), structured.grammar, ctx.served.folder, body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens');
    // n > 1 / best_of: one prefill, n choices sharing the prompt's pages (choices.ts); each choice carries the
    // grammar, but tool calls are parsed from one choice's stream only
    const { gen, choices } = resolveChoices(body, resolved, ctx.maxChoices);
    if (hasChoices(choices)) {
      if (structured.parseTools) throw invalidParam('n', "Invalid value for 'n': more than one choice together with 'tools' is not supported.");
      await serveChoices(ctx, res, chatShape, gen, choices, signal);
    } else {
      await serveCompletion(ctx, res, toolCallShape(chatShape, structured), gen, signal);
    }
  };
}
