// Tokenizer of a model folder: tokenizer.json through @huggingface/tokenizers, with tokenizer_config.json
// deciding the special tokens and whether a bos is prepended (transformers adds it from add_bos_token, not
// from tokenizer.json, so the library is always called without its own special-token handling).
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { IncrementalDetokenizer, type Detokenizer } from './detokenizer.js';
import { ModelLoadError } from './errors.js';
import { readJsonFile } from './json-file.js';

export interface EncodeOptions {
  /** Prepend the bos id; defaults to tokenizer_config.json's add_bos_token. */
  readonly addBos?: boolean;
}
export interface DecodeOptions {
  readonly skipSpecialTokens?: boolean;
}

/** Special tokens in tokenizer_config.json are strings or (older files) {"content": ...} objects. */
function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && typeof (v as { content?: unknown }).content === 'string') return (v as { content: string }).content;
  return null;
}

/** What grammar/vocabulary.ts needs to know each token's bytes: the decoder's kind and the added tokens. */
export interface TokenizerVocabInfo {
  /** tokenizer.json's decoder type(s), e.g. ['ByteLevel'] or ['Replace', 'ByteFallback', 'Fuse', 'Strip']. */
  readonly decoders: readonly string[];
  /** Added tokens by id: their content is literal text, not in the model's byte encoding. */
  readonly added: ReadonlyMap<number, { readonly content: string; readonly special: boolean }>;
}

export class Tokenizer {
  readonly bosToken: string | null;
  readonly eosToken: string | null;
  readonly bosTokenId: number | null;
  readonly eosTokenId: number | null;
  readonly addBosToken: boolean;

  private constructor(
    private readonly hf: HfTokenizer,
    /** tokenizer_config.json as read (chat_template and any other keys). */
    readonly config: Readonly<Record<string, unknown>>,
    source: string,
    readonly vocabInfo: TokenizerVocabInfo = { decoders: [], added: new Map() },
  ) {
    const id = (key: string): [string | null, number | null] => {
      const tok = tokenContent(config[key]);
      if (tok === null) return [null, null];
      const tid = hf.token_to_id(tok);
      if (tid === undefined) throw new ModelLoadError(`${source}: ${key} ${JSON.stringify(tok)} is not in tokenizer.json's vocabulary`);
      return [tok, tid];
    };
    [this.bosToken, this.bosTokenId] = id('bos_token');
    [this.eosToken, this.eosTokenId] = id('eos_token');
    const explicit = config['add_bos_token'];
    // Without add_bos_token, follow tokenizer.json's post-processor (e.g. a TemplateProcessing that adds bos).
    this.addBosToken = typeof explicit === 'boolean' ? explicit && this.bosTokenId !== null : this.postProcessorAddsBos();
  }

  /** Reads `dir/tokenizer.json` and (optional) `dir/tokenizer_config.json`. */
  static load(dir: string): Tokenizer {
    const tjPath = join(dir, 'tokenizer.json');
    if (!existsSync(tjPath)) throw new ModelLoadError(`tokenizer.json is missing from ${dir}`);
    const tcPath = join(dir, 'tokenizer_config.json');
    const tc = existsSync(tcPath) ? readJsonFile(tcPath) : {};
    return Tokenizer.fromJson(readJsonFile(tjPath), tc, tcPath);
  }

  static fromJson(tokenizerJson: unknown, tokenizerConfig: unknown = {}, source = 'tokenizer_config.json'): Tokenizer {
    if (!tokenizerConfig || typeof tokenizerConfig !== 'object' || Array.isArray(tokenizerConfig)) {
      throw new ModelLoadError(`${source}: expected a JSON object`);
    }
    const cfg = { ...(tokenizerConfig as Record<string, unknown>) };
    // The library expects special tokens as plain strings.
    for (const k of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) if (k in cfg) cfg[k] = tokenContent(cfg[k]) ?? undefined;
    let hf: HfTokenizer;
    try {
      hf = new HfTokenizer(tokenizerJson as object, cfg);
    } catch (cause) {
      throw new ModelLoadError(`tokenizer.json could not be loaded: ${(cause as Error).message}`, { cause });
    }
    return new Tokenizer(hf, tokenizerConfig as Record<string, unknown>, source, vocabInfoOf(tokenizerJson));
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids = this.hf.encode(text, { add_special_tokens: false }).ids;
    const addBos = (opts.addBos ?? this.addBosToken) && this.bosTokenId !== null;
    return addBos ? [this.bosTokenId!, ...ids] : ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    // The library refuses an empty list; the detokenizer decodes empty windows routinely.
    if (ids.length === 0) return '';
    return this.hf.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  /** A streaming decoder for generated ids; see detokenizer.ts. */
  createDetokenizer(opts: DecodeOptions = {}): Detokenizer {
    return new IncrementalDetokenizer((ids) => this.decode(ids, opts));
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  private postProcessorAddsBos(): boolean {
    if (this.bosTokenId === null) return false;
    return this.hf.encode('a', { add_special_tokens: true }).ids[0] === this.bosTokenId;
  }
}

function vocabInfoOf(json: unknown): TokenizerVocabInfo {
  const j = (json ?? {}) as { decoder?: { type?: string; decoders?: { type?: string }[] } | null; added_tokens?: { id?: number; content?: string; special?: boolean }[] };
  const d = j.decoder;
  const decoders = !d ? [] : d.type === 'Sequence' ? (d.decoders ?? []).map((x) => String(x.type)) : [String(d.type)];
  const added = new Map<number, { content: string; special: boolean }>();
  for (const t of j.added_tokens ?? []) if (typeof t.id === 'number' && typeof t.content === 'string') added.set(t.id, { content: t.content, special: t.special === true });
  return { decoders, added };
}
