// A grammar over a model's tokens: each automaton state's allowed-token set, as a bitmask [ceil(vocab/32)]
// u32 (bit i of word i>>5 = token i allowed) for the GPU's token-mask kernel. The set comes from walking a
// trie of the tokens' bytes with the byte automaton (cached per state). EOS is allowed exactly where the
// text may end. With `remaining` tokens left (this one included), a token is allowed only if the text can
// still be completed after it, one token per byte, with one token to spare for EOS: so JSON always closes
// within max_tokens (the shortest completion is forced as the budget runs out), given the vocabulary has a
// token for every single ASCII byte (byte-level BPE and byte-fallback vocabularies do).
import { ByteAutomaton, utf8Phase, type Stack } from './automaton.js';
import { GrammarError, validateGrammarSpec, type GrammarSpec } from './spec.js';

export interface GrammarVocabulary {
  /** The model's vocabulary size (the logits' width; may exceed the tokenizer's). */
  readonly size: number;
  /** Each token's bytes when decoded; null for special tokens and ids the tokenizer lacks. */
  readonly bytes: readonly (Uint8Array | null)[];
  /** Tokens that end the text (allowed only where the grammar accepts). */
  readonly eos: readonly number[];
}

interface TrieNode {
  readonly next: Map<number, TrieNode>;
  readonly ids: number[];
}

/**
 * Whether a token's bytes, inside a JSON string, leave the string's state as it was: printable ASCII but the
 * quote and backslash, and whole well-formed UTF-8 characters (as the automaton's string frame reads them).
 */
function plainInString(b: Uint8Array): boolean {
  let ph = 0;
  for (const x of b) {
    if (ph === 0 && (x === 0x22 || x === 0x5c)) return false;
    ph = utf8Phase(ph, x);
    if (ph < 0) return false;
  }
  return ph === 0;
}

/** The vocabulary split for string states: the plain tokens' ids, and a trie of the others. */
const stringSplits = new WeakMap<GrammarVocabulary, { plain: Int32Array; rest: TrieNode }>();
function stringSplitOf(v: GrammarVocabulary): { plain: Int32Array; rest: TrieNode } {
  let s = stringSplits.get(v);
  if (s) return s;
  const plain: number[] = [];
  const rest = buildTrie(v, (b, id) => {
    if (!plainInString(b)) return true;
    plain.push(id);
    return false;
  });
  stringSplits.set(v, (s = { plain: Int32Array.from(plain), rest }));
  return s;
}

function buildTrie(v: GrammarVocabulary, keep: (b: Uint8Array, id: number) => boolean): TrieNode {
  const root: TrieNode = { next: new Map(), ids: [] };
  v.bytes.forEach((b, id) => {
    if (!b || b.length === 0 || id >= v.size || !keep(b, id)) return;
    let n = root;
    for (const x of b) {
      let m = n.next.get(x);
      if (!m) n.next.set(x, (m = { next: new Map(), ids: [] }));
      n = m;
    }
    n.ids.push(id);
  });
  return root;
}

const tries = new WeakMap<GrammarVocabulary, TrieNode>();
function trieOf(v: GrammarVocabulary): TrieNode {
  let root = tries.get(v);
  if (root) return root;
  root = buildTrie(v, () => true);
  tries.set(v, root);
  return root;
}

interface StateTokens {
  /** Allowed tokens (EOS aside) and the fewest bytes to complete the text after each. */
  readonly ids: Int32Array;
  readonly dists: Int32Array;
  /** Next state after each (parallel to ids). */
  readonly next: readonly Stack[];
  readonly accepting: boolean;
}

const MAX_CACHED_STATES = 2048;
/** Allowed tokens held by a grammar's cached states (~24 bytes each): a state inside a string of a 100k vocabulary holds nearly all. */
const MAX_CACHED_TOKENS = 2_000_000;

export class TokenGrammar {
  readonly automaton: ByteAutomaton;
  readonly words: number;
  private readonly cache = new Map<string, StateTokens>();
  private cachedTokens = 0;
  private readonly eos: Set<number>;

  constructor(spec: GrammarSpec, readonly vocab: GrammarVocabulary) {
    this.automaton = new ByteAutomaton(validateGrammarSpec(spec), (b, i) => this.literalTokens(b, i));
    this.words = Math.ceil(vocab.size / 32);
    this.eos = new Set(vocab.eos);
  }

  private readonly litCosts = new WeakMap<Uint8Array, Int32Array>();

  /**
   * Tokens that write bytes[i..]: a greedy longest match over the vocabulary (an upper bound the mask can
   * always follow, each token of it lowering the count by one); one per byte where no token matches.
   */
  private literalTokens(b: Uint8Array, i: number): number {
    let memo = this.litCosts.get(b);
    if (!memo) this.litCosts.set(b, (memo = new Int32Array(b.length + 1).fill(-1)));
    if (memo[i]! >= 0) return memo[i]!;
    const root = trieOf(this.vocab);
    let n = 0, at = i;
    while (at < b.length) {
      let node: TrieNode | undefined = root, best = 0;
      for (let k = at; k < b.length && node; k++) {
        node = node.next.get(b[k]!);
        if (node && node.ids.length > 0) best = k - at + 1;
      }
      at += Math.max(1, best);
      n++;
    }
    memo[i] = n;
    return n;
  }

  /** A fresh state at the start of the output. */
  start(): GrammarState {
    return new GrammarState(this, this.automaton.initial());
  }

  /** The tokens the shortest complete output takes as the masks force it (one per byte of free text, literals as greedy tokens, plus EOS). */
  minTokens(): number {
    return this.automaton.minToEnd(this.automaton.initial()) + 1;
  }

  isEos(id: number): boolean {
    return this.eos.has(id);
  }

  tokensOf(stack: Stack): StateTokens {
    const key = this.automaton.key(stack);
    const got = this.cache.get(key);
    if (got) return got;
    const ids: number[] = [], dists: number[] = [], next: Stack[] = [];
    const a = this.automaton;
    const walk = (node: TrieNode, s: Stack): void => {
      for (const [b, child] of node.next) {
        const s2 = a.step(s, b);
        if (!s2) continue;
        if (child.ids.length > 0) {
          const d = a.minToEnd(s2);
          for (const id of child.ids) { ids.push(id); dists.push(d); next.push(s2); }
        }
        if (child.next.size > 0) walk(child, s2);
      }
    };
    const top = stack[stack.length - 1];
    if (top?.k === 'str' && top.ph === 0) {
      // inside a string most tokens change nothing: taken in one go, only the others walked
      const { plain, rest } = stringSplitOf(this.vocab);
      const d = a.minToEnd(stack);
      for (const id of plain) { ids.push(id); dists.push(d); next.push(stack); }
      walk(rest, stack);
    } else walk(trieOf(this.vocab), stack);
    const out: StateTokens = { ids: Int32Array.from(ids), dists: Int32Array.from(dists), next, accepting: a.accepting(stack) };
    if (this.cache.size >= MAX_CACHED_STATES || this.cachedTokens + ids.length > MAX_CACHED_TOKENS) {
      this.cache.clear();
      this.cachedTokens = 0;
    }
    this.cache.set(key, out);
    this.cachedTokens += ids.length;
    return out;
  }
}

export class GrammarState {
  private done = false;

  constructor(readonly grammar: TokenGrammar, private stack: Stack) {}

  /** Whether EOS has been taken (only EOS is allowed after it). */
  get finished(): boolean {
    return this.done;
  }

  get accepting(): boolean {
    return this.done || this.grammar.automaton.accepting(this.stack);
  }

  /** The allowed-token bitmask for the next token, `remaining` tokens left including it. */
  mask(remaining: number): Uint32Array {
    const g = this.grammar;
    const words = new Uint32Array(g.words);
    const set = (id: number) => { words[id >>> 5]! |= 1 << (id & 31); };
    const eos = () => { for (const id of g.vocab.eos) if (id < g.vocab.size) set(id); };
    if (this.done) { eos(); return words; }
    const t = g.tokensOf(this.stack);
    let any = false;
    for (let j = 0; j < t.ids.length; j++) if (t.dists[j]! <= remaining - 2) { set(t.ids[j]!); any = true; }
    if (t.accepting) { eos(); any = true; }
    if (!any && t.ids.length > 0) {
      // the budget cannot close the text any more: the tokens that get closest (the output ends as 'length')
      let best = Infinity;
      for (const d of t.dists) best = Math.min(best, d);
      for (let j = 0; j < t.ids.length; j++) if (t.dists[j] === best) set(t.ids[j]!);
    }
    return words;
  }

  /** Whether `token` is allowed now (budget aside). */
  allows(token: number): boolean {
    if (this.grammar.isEos(token)) return this.accepting;
    if (this.done) return false;
    const t = this.grammar.tokensOf(this.stack);
    return t.ids.includes(token);
  }

  /** Takes a sampled token; throws GrammarError for one the grammar does not allow. */
  advance(token: number): void {
    if (this.grammar.isEos(token)) {
      if (!this.accepting) throw new GrammarError(`token ${token} (EOS) ends an incomplete output`);
      this.done = true;
      return;
    }
    if (this.done) throw new GrammarError(`token ${token} after EOS`);
    const t = this.grammar.tokensOf(this.stack);
    const j = t.ids.indexOf(token);
    if (j < 0) throw new GrammarError(`token ${token} is not allowed by the grammar here`);
    this.stack = t.next[j]!;
  }

  /** The fewest bytes that complete the output now. */
  minToEnd(): number {
    return this.done ? 0 : this.grammar.automaton.minToEnd(this.stack);
  }
}

/** A vocabulary's grammars by spec text, so a repeated schema is compiled (and its masks cached) once. */
export class GrammarCache {
  private readonly byText = new Map<string, TokenGrammar>();
  constructor(readonly vocab: GrammarVocabulary, private readonly max = 16) {}

  get(spec: GrammarSpec): TokenGrammar {
    const text = JSON.stringify(spec);
    let g = this.byText.get(text);
    if (g) {
      this.byText.delete(text);
      this.byText.set(text, g);
      return g;
    }
    g = new TokenGrammar(spec, this.vocab);
    if (this.byText.size >= this.max) this.byText.delete(this.byText.keys().next().value!);
    this.byText.set(text, g);
    return g;
  }
}
