// Prompt ids from a request: chat messages rendered with the model's own chat template, or a completion
// prompt (text tokenized as transformers does, or ids taken as given).
import { ChatTemplateError, type ChatMessage } from '@latentwire/model';
import { ApiError, invalidParam } from './api-error.js';
import type { ChatCompletionBody, CompletionBody } from './request-schema.js';
import type { GatewayModel } from './served-model.js';

export function chatPromptIds(model: GatewayModel, messages: ChatCompletionBody['messages']): number[] {
  if (!model.chatTemplate) throw new ApiError(400, 'This model has no chat template; use /v1/completions with a raw prompt.', 'messages');
  const rendered: ChatMessage[] = messages.map((m) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    // Text parts are joined with newlines, as vLLM does.
    content: m.content == null ? '' : typeof m.content === 'string' ? m.content : m.content.map((p) => p.text).join('\n'),
  }));
  try {
    return model.chatTemplate.encode(rendered, { addGenerationPrompt: true });
  } catch (err) {
    // e.g. the template's raise_exception on a role order it does not accept: the request's fault.
    if (err instanceof ChatTemplateError) throw new ApiError(400, err.message, 'messages', null, undefined, { cause: err });
    throw err;
  }
}

export function completionPromptIds(model: GatewayModel, prompt: CompletionBody['prompt']): number[] {
  const p = Array.isArray(prompt) && prompt.length === 1 && typeof prompt[0] !== 'number' ? prompt[0]! : prompt;
  // Text gets the tokenizer's bos, as transformers' tokenizer(prompt) does.
  if (typeof p === 'string') return model.tokenizer.encode(p);
  const ids = p as readonly number[];
  const vocab = model.config.vocabSize;
  const bad = ids.findIndex((id) => id >= vocab);
  if (bad >= 0) throw invalidParam('prompt', `Invalid value for 'prompt': token id ${ids[bad]} at index ${bad} is outside the vocabulary (size ${vocab}).`);
  return [...ids];
}
