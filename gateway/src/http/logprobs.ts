// Logprobs as the two endpoints return them. A token's text is its id decoded alone (special tokens
// included), and its bytes that text's UTF-8 (as vLLM: a token holding part of a character shows U+FFFD).
import type { Tokenizer } from '@latentwire/model';
import type { LoggedToken } from './text-generation.js';

export class TokenTexts {
  private readonly cache = new Map<number, string>();
  constructor(private readonly tokenizer: Tokenizer) {}

  text(id: number): string {
    let t = this.cache.get(id);
    if (t === undefined) {
      t = this.tokenizer.decode([id]);
      this.cache.set(id, t);
    }
    return t;
  }

  bytes(id: number): number[] {
    return [...Buffer.from(this.text(id), 'utf8')];
  }
}

/** Chat: `{content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}], refusal: null}`. */
export function chatLogprobs(tokens: readonly LoggedToken[], texts: TokenTexts): object {
  const entry = (id: number, logprob: number) => ({ token: texts.text(id), logprob, bytes: texts.bytes(id) });
  return {
    content: tokens.map((t) => ({ ...entry(t.id, t.logprob), top_logprobs: t.top.map(([id, lp]) => entry(id, lp)) })),
    refusal: null,
  };
}

/**
 * Completions: `{tokens, token_logprobs, top_logprobs: [{text: logprob}], text_offset}`. As OpenAI's, each
 * top_logprobs dict also holds the sampled token (so up to logprobs + 1 entries); text_offset counts the
 * token texts before it (vLLM's rule), from `offset`.
 */
export function completionLogprobs(tokens: readonly LoggedToken[], texts: TokenTexts, offset: { value: number }): object {
  const textOffset: number[] = [];
  for (const t of tokens) {
    textOffset.push(offset.value);
    offset.value += texts.text(t.id).length;
  }
  return {
    tokens: tokens.map((t) => texts.text(t.id)),
    token_logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) => {
      const top: Record<string, number> = {};
      for (const [id, lp] of t.top) top[texts.text(id)] ??= lp;
      top[texts.text(t.id)] ??= t.logprob;
      return top;
    }),
    text_offset: textOffset,
  };
}
