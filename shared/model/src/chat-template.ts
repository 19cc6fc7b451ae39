// The model's Jinja chat template (compiled once with @huggingface/jinja), rendered the way transformers'
// apply_chat_template does: special-token strings in the context, and the result tokenized WITHOUT adding
// special tokens, because templates such as DeepSeek's already write the bos string themselves.
import { Template } from '@huggingface/jinja';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ModelLoadError } from './errors.js';
import type { Tokenizer } from './tokenizer.js';

export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

export interface RenderOptions {
  /** Append the assistant turn opener so the model writes the reply. */
  readonly addGenerationPrompt?: boolean;
  /**
   * Leave the final message open (assistant prefill): the text ends with its content, with nothing the
   * template writes after it (no end-of-turn token). Not together with addGenerationPrompt.
   */
  readonly continueFinalMessage?: boolean;
  /** Extra template variables (e.g. tools), passed through unchanged. */
  readonly extra?: Readonly<Record<string, unknown>>;
}

/** A template that failed while rendering (e.g. its raise_exception on bad role order): the request's fault. */
export class ChatTemplateError extends Error {
  override readonly name = 'ChatTemplateError';
}

export class ChatTemplate {
  private readonly template: Template;

  constructor(
    readonly source: string,
    private readonly tokenizer: Tokenizer,
    origin = 'chat template',
  ) {
    try {
      this.template = new Template(source);
    } catch (cause) {
      throw new ModelLoadError(`${origin} does not compile: ${(cause as Error).message}`, { cause });
    }
  }

  render(messages: readonly ChatMessage[], opts: RenderOptions = {}): string {
    if (!opts.continueFinalMessage) return this.renderWhole(messages, opts);
    const last = messages.at(-1);
    if (opts.addGenerationPrompt) throw new ChatTemplateError('continueFinalMessage and addGenerationPrompt cannot both be set');
    if (!last) throw new ChatTemplateError('continueFinalMessage needs a final message to continue');
    // The final content is replaced by a marker, and the text cut where the marker is written. Searching
    // for the content itself (transformers' rindex) cuts in the wrong place when it also occurs later, e.g.
    // content "s" inside the eos string "<｜end▁of▁sentence｜>", and cannot find an empty content at all.
    // The content is then put back verbatim: a prefill is continued exactly as the client wrote it.
    const rendered = this.renderWhole([...messages.slice(0, -1), { ...last, content: FINAL_MARK }], { ...opts, addGenerationPrompt: false });
    const at = rendered.indexOf(FINAL_MARK);
    if (at < 0 || rendered.indexOf(FINAL_MARK, at + 1) >= 0) {
      throw new ChatTemplateError(`the chat template does not write the final ${last.role} message's content exactly once, so it cannot be continued`);
    }
    return rendered.slice(0, at) + last.content;
  }

  private renderWhole(messages: readonly ChatMessage[], opts: RenderOptions): string {
    const t = this.tokenizer;
    try {
      return this.template.render({
        ...opts.extra,
        messages: messages.map((m) => ({ ...m })),
        add_generation_prompt: opts.addGenerationPrompt ?? false,
        bos_token: t.bosToken ?? '',
        eos_token: t.eosToken ?? '',
        unk_token: specialString(t.config['unk_token']),
        pad_token: specialString(t.config['pad_token']),
      });
    } catch (cause) {
      throw new ChatTemplateError(`chat template failed: ${(cause as Error).message}`, { cause });
    }
  }

  /** Rendered conversation as token ids; never prepends a second bos (the template writes its own). */
  encode(messages: readonly ChatMessage[], opts: RenderOptions = {}): number[] {
    return this.tokenizer.encode(this.render(messages, opts), { addBos: false });
  }
}

/** Stands for the final message's content while continuing it: private-use characters, no whitespace, so
 *  a template's trim() or strip() leaves it whole. */
const FINAL_MARK = '\uE000latentwire-final-message\uE000';

function specialString(v: unknown): string {
  if (typeof v === 'string') return v;
  const c = v && typeof v === 'object' ? (v as { content?: unknown }).content : undefined;
  return typeof c === 'string' ? c : '';
}

/**
 * The folder's chat template, or null if it has none. transformers 5 saves it as chat_template.jinja, older
 * versions inside tokenizer_config.json (a string, or a list of named templates of which "default" is used).
 */
export function loadChatTemplate(dir: string, tokenizer: Tokenizer): ChatTemplate | null {
  const jinjaFile = join(dir, 'chat_template.jinja');
  if (existsSync(jinjaFile)) return new ChatTemplate(readFileSync(jinjaFile, 'utf8'), tokenizer, jinjaFile);
  const raw = tokenizer.config['chat_template'];
  const origin = `chat_template in ${join(dir, 'tokenizer_config.json')}`;
  if (raw === undefined || raw === null) return null;
  if (typeof raw === 'string') return new ChatTemplate(raw, tokenizer, origin);
  if (Array.isArray(raw)) {
    const named = raw.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === 'default') as
      | { template?: unknown }
      | undefined;
    if (named && typeof named.template === 'string') return new ChatTemplate(named.template, tokenizer, origin);
    throw new ModelLoadError(`${origin} is a list without a "default" template`);
  }
  throw new ModelLoadError(`${origin} must be a string or a list of {name, template}`);
}

/** The template, or a clear error for models that ship none (send a raw prompt to those instead). */
export function requireChatTemplate(template: ChatTemplate | null, dir: string): ChatTemplate {
  if (template) return template;
  throw new ModelLoadError(
    `the model in ${dir} has no chat template (no chat_template in tokenizer_config.json and no chat_template.jinja); ` +
      'send a raw prompt instead of chat messages',
  );
}
