// POST /tokenize and POST /detokenize, as vLLM serves them (and llama.cpp's server, with other field
// names). Both run in the PromptPool's worker threads, never on the event loop, through the same code as
// generation requests: /tokenize's ids are exactly the prompt ids a completion or chat request would get.
//   /tokenize   {model?, prompt}                      → {count, max_model_len, tokens}  (bos added, as /v1/completions)
//               {model?, messages, add_generation_prompt?, continue_final_message?}     (as /v1/chat/completions)
//   /detokenize {model?, tokens}                      → {prompt}  (special tokens kept, as vLLM)
import type { RequestHandler } from 'express';
import { z } from 'zod';
import { ApiError, invalidParam, modelNotFound } from './api-error.js';
import { clientGoneSignal } from './client-signal.js';
import { chatPromptIds, chatRenderFlags, completionPromptIds, type PromptContext } from './prompt.js';
import { chatCompletionSchema, parseBody } from './request-schema.js';
import type { RouteContext } from './serve-completion.js';
import { PromptError } from '../prompt/index.js';

const model = z.string().nullish();
const textSchema = z.strictObject({ model, prompt: z.string() });
const chatSchema = z.strictObject({
  model,
  messages: chatCompletionSchema.shape.messages,
  add_generation_prompt: z.boolean().nullish(),
  continue_final_message: z.boolean().nullish(),
});
const detokenizeSchema = z.strictObject({ model, tokens: z.array(z.number().int().min(0)) });

export function tokenizeHandler(ctx: RouteContext): RequestHandler {
  return async (req, res) => {
    const raw: unknown = req.body;
    // Which form is meant is decided by `messages`, so a 400 speaks of the form the client chose.
    const chat = typeof raw === 'object' && raw !== null && 'messages' in raw;
    const body = chat ? parseBody(chatSchema, raw) : parseBody(textSchema, raw);
    checkModel(ctx, body.model);
    // No backend limit, and no check of the count: a prompt over max_model_len is counted, so the client
    // learns by how much. A text the context could never hold, by its byte length alone, is refused
    // before any tokenizing, as for generation requests.
    const p: PromptContext = { model: ctx.served.folder, prompts: ctx.prompts, maxTokenBytes: ctx.maxTokenBytes, backendLimit: undefined, signal: clientGoneSignal(req, res) };
    const tokens = 'messages' in body ? await chatPromptIds(p, body.messages, chatRenderFlags(body)) : await completionPromptIds(p, body.prompt);
    res.json({ count: tokens.length, max_model_len: ctx.served.folder.config.maxPositionEmbeddings, tokens });
  };
}

export function detokenizeHandler(ctx: RouteContext): RequestHandler {
  return async (req, res) => {
    const body = parseBody(detokenizeSchema, req.body);
    checkModel(ctx, body.model);
    const vocab = ctx.served.folder.config.vocabSize;
    const bad = body.tokens.findIndex((id) => id >= vocab);
    if (bad >= 0) throw invalidParam('tokens', `Invalid value for 'tokens': token id ${body.tokens[bad]} at index ${bad} is outside the vocabulary (size ${vocab}).`);
    const signal = clientGoneSignal(req, res);
    try {
      res.json({ prompt: await ctx.prompts.detokenize(body.tokens, signal) });
    } catch (err) {
      if (signal.aborted) throw new ApiError(499, 'The client closed the request while its tokens were decoded.', null, null, undefined, { cause: err });
      if (!(err instanceof PromptError)) throw err;
      if (err.kind === 'overloaded') throw new ApiError(503, `The server is overloaded (${err.message}); retry shortly.`, null, null, 1, { cause: err });
      throw new ApiError(400, `The tokens could not be decoded (${err.message}).`, 'tokens', null, undefined, { cause: err });
    }
  };
}

/** `model` may be left out (one model is served); named, it must be that one. */
function checkModel(ctx: RouteContext, model: string | null | undefined): void {
  if (model != null && model !== ctx.served.id) throw modelNotFound(model);
}
