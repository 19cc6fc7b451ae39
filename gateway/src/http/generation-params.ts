// From a parsed body and its prompt ids to the backend's GenerationRequest: sampling defaults, a seed,
// max_tokens and the context-length check (done here, before any backend is called), stop ids and strings.
import { randomInt } from 'node:crypto';
import type { GenerationConfig } from '@latentwire/model';
import { ApiError, invalidParam } from './api-error.js';
import type { GenerationRequest } from './backend.js';
import type { CommonBody } from './request-schema.js';
import type { WireSampling } from '@latentwire/protocol';
import type { GatewayModel } from './served-model.js';

export interface ResolvedGeneration {
  readonly request: GenerationRequest;
  /** Non-empty stop strings, matched on the generated text and never returned. */
  readonly stop: readonly string[];
  readonly stream: boolean;
  readonly includeUsage: boolean;
}

/** Logprobs asked for: chat's logprobs + top_logprobs, completions' logprobs number; null = none. */
export type LogprobsAsk = number | null;

export interface ResolveInput {
  readonly requestId: string;
  readonly body: CommonBody & { readonly max_completion_tokens?: number | null };
  readonly promptIds: readonly number[];
  /** 'messages' for chat, 'prompt' for completions: the field a too-long prompt is blamed on. */
  readonly promptParam: 'messages' | 'prompt';
  readonly model: GatewayModel;
  /** backend.maxRequestTokens() now. */
  readonly backendLimit: number | undefined;
  /** backend.maxPromptTokens() now: the longest prompt the prefill workers take. */
  readonly promptLimit?: number | undefined;
  /** max_tokens when the request omits it: DEFAULT_MAX_TOKENS for chat, 16 for completions (as OpenAI's). */
  readonly defaultMaxTokens: number;
  /** Top alternatives per token the client asked for, or null for no logprobs. */
  readonly logprobs: LogprobsAsk;
}

/** DEFAULT_MAX_TOKENS's default: pages are reserved for prompt + max_tokens up front, so "all that fits"
 *  as a default would let one request hold a whole decode node's cache. */
export const DEFAULT_CHAT_MAX_TOKENS = 1024;
/** OpenAI's (and vLLM's) max_tokens default for /v1/completions. */
export const DEFAULT_COMPLETION_MAX_TOKENS = 16;

export function resolveGeneration({ requestId, body, promptIds, promptParam, model, backendLimit, promptLimit, defaultMaxTokens, logprobs }: ResolveInput): ResolvedGeneration {
  const stream = body.stream === true;
  if (body.stream_options != null && !stream) {
    throw invalidParam('stream_options', "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
  }
  const vocab = model.config.vocabSize;
  const userStopIds = body.stop_token_ids ?? [];
  const badStop = userStopIds.find((id) => id >= vocab);
  if (badStop !== undefined) throw invalidParam('stop_token_ids', `Invalid value for 'stop_token_ids': ${badStop} is outside the vocabulary (size ${vocab}).`);

  const ignoreEos = body.ignore_eos === true;
  const defaults = samplingDefaults(model.generation);
  const stop = typeof body.stop === 'string' ? [body.stop] : (body.stop ?? []);
  const sampling: WireSampling = {
    temperature: body.temperature ?? defaults.temperature,
    topP: body.top_p ?? defaults.topP,
    topK: body.top_k ?? defaults.topK,
    // A fresh seed per request keeps unseeded requests independent while every backend stays deterministic.
    // any integer is accepted (as OpenAI does) and taken modulo 2^32, the sampler's seed width
    seed: body.seed === undefined || body.seed === null ? randomInt(2 ** 32) : Number(BigInt.asUintN(32, BigInt(body.seed))),
    ...logitFields(body, vocab, logprobs),
  };
  return {
    request: {
      requestId,
      promptIds,
      ...(sampling.repetitionPenalty !== undefined ? { promptTokenSet: promptTokenSet(promptIds, vocab) } : {}),
      maxTokens: resolveMaxTokens(body, promptIds.length, promptParam, model.config.maxPositionEmbeddings, backendLimit, defaultMaxTokens, promptLimit),
      sampling,
      stopTokenIds: [...new Set([...(ignoreEos ? [] : model.generation.eosTokenIds), ...userStopIds])],
      ignoreEos,
    },
    // An empty stop string would end every request before its first character.
    stop: [...new Set(stop.filter((s) => s.length > 0))],
    stream,
    includeUsage: stream && body.stream_options?.include_usage === true,
  };
}

/**
 * Penalties, logit_bias and logprobs as the wire carries them: only the ones that change something, so a
 * request that sends defaults is the same request. logit_bias ids must be in the vocabulary (a 400 naming
 * the field otherwise).
 */
function logitFields(body: CommonBody, vocab: number, logprobs: LogprobsAsk): Partial<WireSampling> {
  const out: { -readonly [K in keyof WireSampling]?: WireSampling[K] } = {};
  if (body.presence_penalty) out.presencePenalty = body.presence_penalty;
  if (body.frequency_penalty) out.frequencyPenalty = body.frequency_penalty;
  if (body.repetition_penalty != null && body.repetition_penalty !== 1) out.repetitionPenalty = body.repetition_penalty;
  const bias: [number, number][] = [];
  for (const [key, value] of Object.entries(body.logit_bias ?? {})) {
    const id = Number(key);
    if (!Number.isSafeInteger(id) || id >= vocab) throw invalidParam('logit_bias', `Invalid value for 'logit_bias': token id ${key} is outside the vocabulary (size ${vocab}).`);
    if (value !== 0) bias.push([id, value]);
  }
  // "5" and "05" name one token: the later entry wins, as a later JSON key would
  const distinct = [...new Map(bias).entries()];
  if (distinct.length > 0) out.logitBias = distinct;
  if (logprobs !== null) out.logprobs = logprobs;
  return out;
}

/** The prompt's token set as the reserve carries it (repetition_penalty only: the decode node never sees prompt ids). */
export function promptTokenSet(promptIds: readonly number[], vocab: number): Uint8Array {
  const set = new Uint8Array(Math.ceil(vocab / 8));
  for (const id of promptIds) set[id >> 3] = set[id >> 3]! | (1 << (id & 7));
  return set;
}

/**
 * OpenAI's defaults (temperature 1, no top-p or top-k limit), unless the checkpoint's generation_config.json
 * asks for sampling with its own values (DeepSeek's do), which then apply as they do in vLLM.
 */
function samplingDefaults(g: GenerationConfig): { temperature: number; topP: number; topK: number } {
  if (g.fromFile && g.doSample) return { temperature: g.temperature, topP: g.topP, topK: g.topK };
  return { temperature: 1, topP: 1, topK: 0 };
}

function resolveMaxTokens(
  body: ResolveInput['body'],
  promptTokens: number,
  promptParam: string,
  modelContext: number,
  backendLimit: number | undefined,
  defaultMaxTokens: number,
  promptLimit: number | undefined,
): number {
  // the prefill workers' devices may take shorter prompts than the model's context (PrefillModel.compileAll's
  // limit): refused here, as every worker would refuse the job
  if (promptLimit !== undefined && promptTokens > promptLimit) {
    throw contextExceeded(
      `The prefill nodes can currently take prompts of at most ${promptLimit} tokens (the model's maximum context length is ${modelContext}). ` +
        `However, your ${promptParam} resulted in ${promptTokens} tokens. Please reduce the length of the ${promptParam}.`,
      promptParam,
    );
  }
  // As in vLLM, max_completion_tokens (chat's newer name) wins over max_tokens.
  const requested = body.max_completion_tokens ?? body.max_tokens ?? undefined;
  const { limit, what } = contextLimit(modelContext, backendLimit);
  if (requested !== undefined && promptTokens + requested > limit) {
    throw contextExceeded(
      `${what} However, you requested ${promptTokens + requested} tokens (${promptTokens} in the ${promptParam}, ${requested} in the completion). ` +
        `Please reduce the length of the ${promptParam} or completion.`,
      promptParam,
    );
  }
  // Default: the default cap, or whatever fits if less; a prompt that leaves no room for one token cannot run.
  if (promptTokens >= limit) {
    throw contextExceeded(`${what} However, your ${promptParam} resulted in ${promptTokens} tokens. Please reduce the length of the ${promptParam}.`, promptParam);
  }
  return requested ?? Math.min(defaultMaxTokens, limit - promptTokens);
}

/** Tokens one request may hold (prompt + completion), and the sentence that says why. */
export function contextLimit(modelContext: number, backendLimit: number | undefined): { limit: number; what: string } {
  const limit = backendLimit === undefined ? modelContext : Math.min(modelContext, backendLimit);
  const what =
    limit < modelContext
      ? `The serving nodes can currently hold at most ${limit} tokens per request (the model's maximum context length is ${modelContext}).`
      : `This model's maximum context length is ${modelContext} tokens.`;
  return { limit, what };
}

export const contextExceeded = (message: string, param: string): ApiError => new ApiError(400, message, param, 'context_length_exceeded');
