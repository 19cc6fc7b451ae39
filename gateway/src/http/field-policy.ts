// OpenAI request fields this server knows but does not implement. Nothing is dropped silently: such a
// field is a 400 naming it, unless its value is the default (which changes nothing, so clients that send
// defaults explicitly keep working). Fields no one here knows at all are refused by the strict schemas
// (request-schema.ts); fields OpenAI documents as hints or bookkeeping are accepted there and ignored.
// The README's API section lists all three kinds; keep it in step with this file.
import { ApiError } from './api-error.js';

export interface RefusedField {
  readonly field: string;
  /** The values that change nothing (null is always one). */
  readonly isDefault: (v: unknown) => boolean;
  /** How the default is written in the error message, or null when only leaving it out is accepted. */
  readonly defaultText: string | null;
}

const refused = (field: string, defaultText: string | null = null, isDefault: (v: unknown) => boolean = () => false): RefusedField => ({
  field,
  isDefault,
  defaultText,
});
const is = (x: unknown) => (v: unknown) => v === x;
const emptyArray = (v: unknown) => Array.isArray(v) && v.length === 0;

/** Sampling changes and outputs the engine does not have yet (issue 10 items 4 and 5; penalties, logit_bias,
 *  logprobs, n and best_of are implemented: request-schema.ts, choices.ts). */
const bothEndpoints: readonly RefusedField[] = [];

export const REFUSED_CHAT_FIELDS: readonly RefusedField[] = [
  ...bothEndpoints,
  // response_format, tools and tool_choice are implemented (gateway/src/structured).
  refused('functions', '[]', emptyArray),
  refused('function_call', '"none" or "auto"', (v) => v === 'none' || v === 'auto'),
  refused('modalities', '["text"]', (v) => Array.isArray(v) && v.length === 1 && v[0] === 'text'),
  refused('audio'),
  refused('prediction'),
  refused('reasoning_effort'),
  refused('verbosity'),
  refused('web_search_options'),
  refused('moderation'),
  // vLLM's chat extension: the prompt in front of the reply.
  refused('echo', 'false', is(false)),
];

export const REFUSED_COMPLETION_FIELDS: readonly RefusedField[] = [
  ...bothEndpoints,
  // echo is implemented (request-schema.ts) except with logprobs: prompt logprobs are not (completions.ts).
  refused('suffix', '""', is('')),
];

/**
 * Throws a 400 for the first refused field whose value is not a default, in OpenAI's own wording for
 * unsupported parameters and values (code 'unsupported_parameter' / 'unsupported_value').
 */
export function refuseUnimplemented(body: unknown, fields: readonly RefusedField[]): void {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return; // the schema says why
  const b = body as Record<string, unknown>;
  for (const f of fields) {
    const v = b[f.field];
    if (v === undefined || v === null || f.isDefault(v)) continue;
    if (f.defaultText === null) {
      throw new ApiError(400, `Unsupported parameter: '${f.field}' is not supported by this server.`, f.field, 'unsupported_parameter');
    }
    throw new ApiError(
      400,
      `Unsupported value: '${f.field}' does not support ${shortJson(v)} with this server. Only the default (${f.defaultText}) is supported.`,
      f.field,
      'unsupported_value',
    );
  }
}

function shortJson(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}
