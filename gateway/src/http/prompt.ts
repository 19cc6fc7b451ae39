// Prompt ids from a request: chat messages rendered with the model's own chat template, or a completion
// prompt (text tokenized as transformers does, or ids taken as given). Rendering and tokenizing run in the
// PromptPool's worker threads; a text longer than the context could ever hold is refused before that, by
// its byte length alone.
import { ApiError, invalidParam } from './api-error.js';
import { contextExceeded, contextLimit } from './generation-params.js';
import type { ChatCompletionBody, CompletionBody } from './request-schema.js';
import type { GatewayModel } from './served-model.js';
import { PromptError, type PromptPool, type PromptTask } from '../prompt/index.js';

export interface PromptContext {
  readonly model: GatewayModel;
  readonly prompts: PromptPool;
  /** maxTokenBytes() of the model's tokenizer. */
  readonly maxTokenBytes: number;
  /** backend.maxRequestTokens() now. */
  readonly backendLimit: number | undefined;
  /** The client going away stops the worker's task. */
  readonly signal: AbortSignal;
}

/** How the conversation ends: the assistant turn opened (the default), left closed, or its final message continued. */
export interface ChatRenderFlags {
  readonly addGenerationPrompt: boolean;
  readonly continueFinalMessage: boolean;
}

/** vLLM's add_generation_prompt / continue_final_message, with vLLM's refusal of both at once. Unlike
 *  vLLM, continue_final_message alone needs no add_generation_prompt: false beside it. */
export function chatRenderFlags(body: {
  readonly messages: ChatCompletionBody['messages'];
  readonly add_generation_prompt?: boolean | null | undefined;
  readonly continue_final_message?: boolean | null | undefined;
}): ChatRenderFlags {
  const continueFinalMessage = body.continue_final_message === true;
  if (continueFinalMessage && body.add_generation_prompt === true) {
    throw invalidParam('continue_final_message', 'Cannot set both `continue_final_message` and `add_generation_prompt` to true.');
  }
  const last = body.messages.at(-1);
  if (continueFinalMessage && last?.role !== 'assistant') {
    throw invalidParam('messages', `With 'continue_final_message' the last message must be an assistant message to continue, not a ${last?.role} message.`);
  }
  return { continueFinalMessage, addGenerationPrompt: body.add_generation_prompt ?? !continueFinalMessage };
}

/** `tools`: OpenAI's tools for a template that renders them itself (gateway/src/structured decides). */
export async function chatPromptIds(p: PromptContext, messages: ChatCompletionBody['messages'], flags: ChatRenderFlags, tools?: readonly object[]): Promise<number[]> {
  if (!p.model.chatTemplate) throw new ApiError(400, 'This model has no chat template; use /v1/completions with a raw prompt.', 'messages');
  const rendered = messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    // Text parts are joined with newlines, as vLLM does.
    content: m.content == null ? '' : typeof m.content === 'string' ? m.content : m.content.map((part) => part.text).join('\n'),
    // tool turns as OpenAI sends them, for templates that render them (only where present: templates test `'tool_calls' in message`)
    ...(m.tool_calls && m.tool_calls.length > 0 ? { tool_calls: m.tool_calls } : {}),
    ...(m.tool_call_id ? { tool_call_id: m.tool_call_id } : {}),
  }));
  const texts = [...rendered.map((m) => m.content), ...(tools ? [JSON.stringify(tools)] : [])];
  return tokenize(p, { kind: 'chat', messages: rendered, ...flags, ...(tools ? { tools } : {}) }, texts, 'messages');
}

export async function completionPromptIds(p: PromptContext, prompt: CompletionBody['prompt']): Promise<number[]> {
  const one = Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] !== 'number' ? prompt[0]! : prompt;
  if (typeof one === 'string') return tokenize(p, { kind: 'text', text: one }, [one], 'prompt');
  const ids = one as readonly number[];
  const vocab = p.model.config.vocabSize;
  const bad = ids.findIndex((id) => id >= vocab);
  if (bad >= 0) throw invalidParam('prompt', `Invalid value for 'prompt': token id ${ids[bad]} at index ${bad} is outside the vocabulary (size ${vocab}).`);
  return [...ids];
}

async function tokenize(p: PromptContext, task: PromptTask, texts: readonly string[], param: 'messages' | 'prompt'): Promise<number[]> {
  const { limit, what } = contextLimit(p.model.config.maxPositionEmbeddings, p.backendLimit);
  let bytes = 0;
  for (const s of texts) bytes += Buffer.byteLength(s, 'utf8');
  const atLeast = Math.ceil(bytes / p.maxTokenBytes);
  if (atLeast >= limit) {
    throw contextExceeded(
      `${what} However, your ${param} has ${bytes} bytes of text, which is at least ${atLeast} tokens. Please reduce the length of the ${param}.`,
      param,
    );
  }
  try {
    return await p.prompts.run(task, p.signal);
  } catch (err) {
    // The worker's task was stopped because the client went away: nobody to answer, nothing to log as an error.
    if (p.signal.aborted) throw new ApiError(499, 'The client closed the request while its prompt was tokenized.', null, null, undefined, { cause: err });
    if (!(err instanceof PromptError)) throw err;
    // e.g. the template's raise_exception on a role order it does not accept: the request's fault.
    if (err.kind === 'template') throw new ApiError(400, err.message, 'messages', null, undefined, { cause: err });
    if (err.kind === 'overloaded') throw new ApiError(503, `The server is overloaded (${err.message}); retry shortly.`, null, null, 1, { cause: err });
    throw new ApiError(400, `The ${param} could not be tokenized (${err.message}). Shorten it or break up very long runs without whitespace.`, param, 'invalid_prompt', undefined, {
      cause: err,
    });
  }
}
