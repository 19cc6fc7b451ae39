// Logprobs as the two endpoints return them. A token's text is its id decoded alone (special tokens
// included), and its bytes that text's UTF-8 (as vLLM: a token holding part of a character shows U+FFFD).
import type { Tokenizer } from '@latentwire/model';
import type { TokenLogprob } from './backend.js';
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

/**
 * Completions' echo with logprobs: the prompt's entries in completionLogprobs' shape. The first prompt token
 * has no logprob (nothing precedes it): null, and null top_logprobs (as OpenAI and vLLM); token i + 1 has
 * entries[i]. `offset` advances past the prompt's token texts, so the completion's text_offset follows them.
 */
export function completionPromptLogprobs(promptIds: readonly number[], entries: readonly TokenLogprob[] | undefined, texts: TokenTexts, offset: { value: number }): CompletionLogprobs {
  const out: CompletionLogprobs = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
  promptIds.forEach((id, i) => {
    const e = i > 0 ? entries?.[i - 1] : undefined;
    out.tokens.push(texts.text(id));
    out.token_logprobs.push(e ? e.logprob : null);
    let top: Record<string, number> | null = null;
    if (e) {
      top = {};
      for (const [alt, lp] of e.top) top[texts.text(alt)] ??= lp;
      top[texts.text(id)] ??= e.logprob;
    }
    out.top_logprobs.push(top);
    out.text_offset.push(offset.value);
    offset.value += texts.text(id).length;
  });
  return out;
}

/** Completions' logprobs objects one after the other (the echoed prompt's, then the completion's). */
export function joinCompletionLogprobs(a: object, b: object): object {
  const x = a as CompletionLogprobs, y = b as CompletionLogprobs;
  return {
    tokens: [...x.tokens, ...y.tokens],
    token_logprobs: [...x.token_logprobs, ...y.token_logprobs],
    top_logprobs: [...x.top_logprobs, ...y.top_logprobs],
    text_offset: [...x.text_offset, ...y.text_offset],
  };
}

interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}
