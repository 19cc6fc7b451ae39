// Request bodies of /v1/chat/completions and /v1/completions. Nothing is dropped silently: the objects are
// strict, so a field no one here knows is a 400 naming it (as OpenAI's "Unrecognized request argument");
// fields known but not implemented are refused by field-policy.ts unless they carry their default; the
// few OpenAI documents as hints or bookkeeping are type-checked and ignored (IGNORED below). null means
// "default", and a wrong type or range is a 400 naming the field.
import { z } from 'zod';
import { ApiError, invalidParam } from './api-error.js';
import { MAX_LOGIT_BIAS, MAX_REPETITION_PENALTY, MAX_WIRE_CHOICES, MAX_WIRE_TOP_LOGPROBS } from '@latentwire/protocol';
import { REFUSED_CHAT_FIELDS, REFUSED_COMPLETION_FIELDS, refuseUnimplemented, type RefusedField } from './field-policy.js';
import { messageToolCallsSchema, responseFormatSchema, toolChoiceSchema, toolSchema } from '../structured/request-fields.js';

/** Accepted and ignored: OpenAI documents these as bookkeeping (user, metadata, store, safety_identifier),
 *  routing (service_tier) or cache hints (prompt_cache_*); none changes the tokens a request gets. */
const ignored = {
  user: z.string().nullish(),
  safety_identifier: z.string().nullish(),
  metadata: z.record(z.string(), z.string()).nullish(),
  store: z.boolean().nullish(),
  service_tier: z.string().nullish(),
  prompt_cache_key: z.string().nullish(),
  prompt_cache_retention: z.string().nullish(),
  prompt_cache_options: z.record(z.string(), z.unknown()).nullish(),
};

/** Lets field-policy.ts's fields past the strict check; refuseUnimplemented has already judged them. */
const judged = (fields: readonly RefusedField[]) => Object.fromEntries(fields.map((f) => [f.field, z.unknown().optional()]));

/** Fields both endpoints share: sampling, limits, stops, streaming, and our extensions (top_k, ignore_eos, stop_token_ids). */
const common = {
  ...ignored,
  model: z.string(),
  stream: z.boolean().nullish(),
  // include_obfuscation pads chunks against length side channels at OpenAI; ignored (never padded).
  stream_options: z.strictObject({ include_usage: z.boolean().nullish(), include_obfuscation: z.boolean().nullish() }).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).max(0xffffffff).nullish(),
  seed: z.number().int().nullish(),
  max_tokens: z.number().int().positive().nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)], { error: 'expected a string or an array of up to 4 strings' }).nullish(),
  ignore_eos: z.boolean().nullish(),
  stop_token_ids: z.array(z.number().int().min(0).max(0xffffffff)).max(128).nullish(),
  // Applied on the GPU before sampling (logit-adjust.wgsl); ids are checked against the vocabulary later.
  presence_penalty: z.number().min(-2).max(2).nullish(),
  frequency_penalty: z.number().min(-2).max(2).nullish(),
  // vLLM's extension; vLLM requires > 0, the wire bounds it at MAX_REPETITION_PENALTY
  repetition_penalty: z.number().gt(0).max(MAX_REPETITION_PENALTY).nullish(),
  // choices of one prompt sharing its prefill (choices.ts checks them against MAX_N)
  n: z.number().int().min(1).max(MAX_WIRE_CHOICES).nullish(),
  logit_bias: z
    .record(z.string().regex(/^\d+$/, 'keys must be token ids (decimal integers)'), z.number().min(-100).max(100))
    .refine((m) => Object.keys(m).length <= MAX_LOGIT_BIAS, `at most ${MAX_LOGIT_BIAS} entries`)
    .nullish(),
};

// prompt_cache_breakpoint is a cache hint: ignored.
const textPart = z.strictObject({ type: z.literal('text'), text: z.string(), prompt_cache_breakpoint: z.unknown().optional() });
const content = z.union([z.string(), z.array(textPart)], {
  error: 'expected a string or an array of text parts ({"type": "text", "text": "..."}); other part types are not supported',
});
const noToolCalls = (v: unknown): boolean => v == null || (Array.isArray(v) && v.length === 0);
const message = z
  .strictObject({
    // 'developer' is OpenAI's newer name for 'system'; 'tool' answers an assistant's tool call (the legacy
    // 'function' role and function_call are not supported).
    role: z.enum(['system', 'developer', 'user', 'assistant', 'tool'], { error: "expected 'system', 'developer', 'user', 'assistant' or 'tool'" }),
    content: content.nullish(),
    // A participant's name: the chat template is given role and content only, so it is ignored.
    name: z.string().nullish(),
    // What an earlier assistant turn carried at OpenAI; only their empty forms are accepted.
    refusal: z.string().nullish(),
    // an assistant turn's calls (gateway/src/structured renders them), and the call a tool message answers
    tool_calls: messageToolCallsSchema.nullish(),
    tool_call_id: z.string().nullish(),
    function_call: z.unknown().optional(),
    audio: z.unknown().optional(),
  })
  .superRefine((m, ctx) => {
    // Only an assistant turn (one that carried tool calls at OpenAI) may omit its content.
    if (m.content == null && m.role !== 'assistant') ctx.addIssue({ code: 'custom', path: ['content'], message: `a ${m.role} message needs content` });
    for (const k of ['function_call', 'audio'] as const) {
      if (!noToolCalls(m[k])) ctx.addIssue({ code: 'custom', path: [k], message: 'not supported by this server (use tools and tool_calls)' });
    }
    if (m.role !== 'assistant' && !noToolCalls(m.tool_calls)) ctx.addIssue({ code: 'custom', path: ['tool_calls'], message: 'only assistant messages carry tool calls' });
    if (m.role === 'tool' && !m.tool_call_id) ctx.addIssue({ code: 'custom', path: ['tool_call_id'], message: 'a tool message needs the tool_call_id it answers' });
  });

export const chatCompletionSchema = z.strictObject({
  ...common,
  ...judged(REFUSED_CHAT_FIELDS),
  messages: z.array(message).min(1),
  max_completion_tokens: z.number().int().positive().nullish(),
  // Assistant prefill, as vLLM names it: continue_final_message leaves the last (assistant) message open.
  // add_generation_prompt defaults to true, or to false when continue_final_message is set.
  add_generation_prompt: z.boolean().nullish(),
  continue_final_message: z.boolean().nullish(),
  // Structured output and tools (gateway/src/structured).
  response_format: responseFormatSchema.nullish(),
  tools: z.array(toolSchema).max(128).nullish(),
  tool_choice: toolChoiceSchema.nullish(),
  parallel_tool_calls: z.boolean().nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(MAX_WIRE_TOP_LOGPROBS).nullish(),
}).superRefine((b, ctx) => {
  // as OpenAI: top_logprobs needs logprobs
  if ((b.top_logprobs ?? 0) > 0 && b.logprobs !== true) ctx.addIssue({ code: 'custom', path: ['top_logprobs'], message: "'logprobs' must be true when 'top_logprobs' is set" });
});

const tokenIds = z.array(z.number().int().min(0)).min(1);
export const completionSchema = z.strictObject({
  ...common,
  ...judged(REFUSED_COMPLETION_FIELDS),
  prompt: z.union([z.string(), tokenIds, z.tuple([z.string()]), z.tuple([tokenIds])], {
    error: 'expected a string, an array of token ids, or a one-element array of either (one prompt per request)',
  }),
  // Top alternatives per token (0: the sampled token's only); OpenAI allows 5, vLLM (and this server) 20.
  logprobs: z.number().int().min(0).max(MAX_WIRE_TOP_LOGPROBS).nullish(),
  // candidates generated, the n with the highest cumulative logprob returned (choices.ts)
  best_of: z.number().int().min(1).max(MAX_WIRE_CHOICES).nullish(),
  // the prompt's text in front of each choice's (not with logprobs: prompt logprobs are not computed)
  echo: z.boolean().nullish(),
});

export type ChatCompletionBody = z.infer<typeof chatCompletionSchema>;
export type CompletionBody = z.infer<typeof completionSchema>;
export type CommonBody = ChatCompletionBody | CompletionBody;

export const parseChatBody = (body: unknown): ChatCompletionBody => {
  refuseUnimplemented(body, REFUSED_CHAT_FIELDS);
  return parseBody(chatCompletionSchema, body);
};
export const parseCompletionBody = (body: unknown): CompletionBody => {
  refuseUnimplemented(body, REFUSED_COMPLETION_FIELDS);
  return parseBody(completionSchema, body);
};

/** Parses a body or throws a 400 ApiError naming the first offending field, in OpenAI's wording where it has one. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body, { reportInput: true });
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const param = formatPath([...issue.path, issue.keys[0]!]);
    throw new ApiError(400, `Unrecognized request argument supplied: ${param}`, param, 'unknown_parameter');
  }
  if (issue.path.length === 0) return failBody(issue.message);
  const param = formatPath(issue.path);
  // With reportInput every built-in issue carries the value it rejected; undefined means the field is absent.
  if (issue.code !== 'custom' && issue.input === undefined) throw invalidParam(param, `Missing required parameter: '${param}'.`);
  throw invalidParam(param, `Invalid value for '${param}': ${issue.message}`);
}

function failBody(detail: string): never {
  throw new ApiError(400, `The request body must be a JSON object (${detail}).`);
}

/** ['messages', 0, 'content'] → 'messages[0].content' */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}
