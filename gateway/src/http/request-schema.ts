// Request bodies of /v1/chat/completions and /v1/completions. As at OpenAI, unknown fields are ignored
// (z.object strips them), null means "default", and a wrong type or range is a 400 naming the field.
import { z } from 'zod';
import { ApiError, invalidParam } from './api-error.js';

/** Fields both endpoints share: sampling, limits, stops, streaming, and our extensions (top_k, ignore_eos, stop_token_ids). */
const common = {
  model: z.string(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  top_k: z.number().int().min(0).max(0xffffffff).nullish(),
  seed: z.number().int().nullish(),
  max_tokens: z.number().int().positive().nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(4)], { error: 'expected a string or an array of up to 4 strings' }).nullish(),
  n: z.literal(1, { error: 'only n=1 is supported: this server returns one choice per request' }).nullish(),
  ignore_eos: z.boolean().nullish(),
  stop_token_ids: z.array(z.number().int().min(0).max(0xffffffff)).max(128).nullish(),
};

const textPart = z.object({ type: z.literal('text'), text: z.string() });
const content = z.union([z.string(), z.array(textPart)], {
  error: 'expected a string or an array of text parts ({"type": "text", "text": "..."}); other part types are not supported',
});
const message = z
  .object({
    // 'developer' is OpenAI's newer name for 'system'.
    role: z.enum(['system', 'developer', 'user', 'assistant']),
    content: content.nullish(),
  })
  .superRefine((m, ctx) => {
    // Only an assistant turn (one that carried tool calls at OpenAI) may omit its content.
    if (m.content == null && m.role !== 'assistant') ctx.addIssue({ code: 'custom', path: ['content'], message: `a ${m.role} message needs content` });
  });

export const chatCompletionSchema = z.object({
  ...common,
  messages: z.array(message).min(1),
  max_completion_tokens: z.number().int().positive().nullish(),
});

const tokenIds = z.array(z.number().int().min(0)).min(1);
export const completionSchema = z.object({
  ...common,
  prompt: z.union([z.string(), tokenIds, z.tuple([z.string()]), z.tuple([tokenIds])], {
    error: 'expected a string, an array of token ids, or a one-element array of either (one prompt per request)',
  }),
});

export type ChatCompletionBody = z.infer<typeof chatCompletionSchema>;
export type CompletionBody = z.infer<typeof completionSchema>;
export type CommonBody = ChatCompletionBody | CompletionBody;

/** Parses a body or throws a 400 ApiError naming the first offending field, in OpenAI's wording where it has one. */
export function parseBody<T>(schema: z.ZodType<T>, body: unknown): T {
  const r = schema.safeParse(body, { reportInput: true });
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
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
