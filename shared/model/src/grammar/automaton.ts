// The byte-level pushdown automaton of a GrammarSpec. A state is a stack of immutable frames (top last); a
// byte either advances the top frame, or — where the top frame may end there (a number, an enum value that
// is a prefix of another) — ends it and goes to the frame below. Every state also knows the fewest bytes
// that complete the text (minToEnd), which the token masks use to finish JSON within max_tokens.
import type { GrammarNode, GrammarSpec } from './spec.js';

type ObjNode = Extract<GrammarNode, { t: 'obj' }>;
type ArrNode = Extract<GrammarNode, { t: 'arr' }>;
interface LitOpt {
  readonly b: Uint8Array;
  readonly then: readonly Frame[];
}
type NumPh = 'start' | 'minus' | 'zero' | 'int' | 'dot' | 'frac' | 'exp' | 'expsign' | 'expd';

export type Frame =
  | { readonly k: 'val'; readonly n: GrammarNode }
  | { readonly k: 'lits'; readonly opts: readonly LitOpt[]; readonly alive: readonly number[]; readonly i: number }
  | { readonly k: 'obj'; readonly n: ObjNode; readonly idx: number; readonly any: boolean }
  | { readonly k: 'arr'; readonly n: ArrNode; readonly count: number }
  | { readonly k: 'str'; readonly ph: number }
  | { readonly k: 'num'; readonly int: boolean; readonly ph: NumPh; readonly d: number }
  | { readonly k: 'aobj'; readonly ph: 'open' | 'key' | 'colon' | 'next' }
  | { readonly k: 'aarr'; readonly ph: 'open' | 'next' };

export type Stack = readonly Frame[];

const utf8 = (s: string) => new TextEncoder().encode(s);
const c = (ch: string) => ch.charCodeAt(0);
const QUOTE = c('"'), BACKSLASH = c('\\'), MINUS = c('-'), DOT = c('.'), ZERO = c('0'), NINE = c('9'), PLUS = c('+');
const isDigit = (b: number) => b >= ZERO && b <= NINE;
const isHex = (b: number) => isDigit(b) || (b >= c('a') && b <= c('f')) || (b >= c('A') && b <= c('F'));
const ESCAPES = new Set([...'"\\/bfnrt'].map(c));
/** Caps on a number's digits (integer part, fraction, exponent): random models write endless digits. */
const MAX_INT_DIGITS = 15, MAX_FRAC_DIGITS = 8, MAX_EXP_DIGITS = 2;

// string phases: 0 inside, 1 after a backslash, 2..5 hex digits of \u left + 1, 6..8 UTF-8 continuation bytes
// left + 5 (any of 80..BF), 9..12 the first continuation of E0 (A0..BF), ED (80..9F), F0 (90..BF), F4 (80..8F)
const STR: readonly Frame[] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12].map((ph) => ({ k: 'str', ph }) as const);

/**
 * A string's text byte by byte, as well-formed UTF-8 (RFC 3629: no overlongs, surrogates or code points past
 * U+10FFFF) without control characters: the phase after byte b from phase ph (0 or 6..12), or -1. The quote and
 * backslash are the caller's.
 */
export function utf8Phase(ph: number, b: number): number {
  switch (ph) {
    case 0:
      if (b < 0x20) return -1;
      if (b < 0x80) return 0;
      if (b >= 0xc2 && b <= 0xdf) return 6;
      if (b === 0xe0) return 9;
      if (b === 0xed) return 10;
      if (b >= 0xe1 && b <= 0xef) return 7;
      if (b === 0xf0) return 11;
      if (b >= 0xf1 && b <= 0xf3) return 8;
      if (b === 0xf4) return 12;
      return -1;
    case 6: case 7: case 8: return b >= 0x80 && b <= 0xbf ? (ph === 6 ? 0 : ph - 1) : -1;
    case 9: return b >= 0xa0 && b <= 0xbf ? 6 : -1;
    case 10: return b >= 0x80 && b <= 0x9f ? 6 : -1;
    case 11: return b >= 0x90 && b <= 0xbf ? 7 : -1;
    case 12: return b >= 0x80 && b <= 0x8f ? 7 : -1;
    default: return -1;
  }
}
/** [STR[ph]], shared: feed allocates nothing for a byte that stays inside a string. */
const IN_STR: readonly (readonly Frame[])[] = STR.map((f) => [f]);
const ANY: GrammarNode = { t: 'any' };

export class ByteAutomaton {
  private readonly ids = new WeakMap<object, number>();
  private nextId = 0;
  private readonly vals = new Map<GrammarNode, Frame>();
  private readonly litsCache = new Map<string, readonly LitOpt[]>();
  private readonly minLens = new Map<GrammarNode, number>();
  private readonly objRests = new Map<string, number>();

  /**
   * `litCost(bytes, i)`: the fewest units (tokens, for TokenGrammar: a greedy longest-match over the
   * vocabulary) that write bytes[i..] of a literal; default one per byte. Other texts count a unit per byte.
   */
  constructor(readonly spec: GrammarSpec, private readonly litCost: (b: Uint8Array, i: number) => number = (b, i) => b.length - i) {}

  initial(): Stack {
    return [this.val(this.spec.root)];
  }

  /** The state after byte b, or null when b is not allowed. */
  step(stack: Stack, b: number): Stack | null {
    let s = stack;
    for (;;) {
      const top = s[s.length - 1];
      if (!top) return null;
      const r = this.feed(top, b);
      // the same frame (most bytes inside a string): the same state, no copy (the trie walk's hot path)
      if (r) return r.length === 1 && r[0] === top ? s : s.length === 1 ? r : [...s.slice(0, -1), ...r];
      const e = this.epsilon(top);
      if (!e) return null;
      s = [...s.slice(0, -1), ...e];
    }
  }

  /** Whether the text may end here. */
  accepting(stack: Stack): boolean {
    let s = stack;
    for (;;) {
      const top = s[s.length - 1];
      if (!top) return true;
      const e = this.epsilon(top);
      if (!e) return false;
      s = [...s.slice(0, -1), ...e];
    }
  }

  /** The fewest bytes that complete the text from this state. */
  minToEnd(stack: Stack): number {
    let n = this.mins.get(stack);
    if (n !== undefined) return n;
    n = 0;
    for (const f of stack) n += this.frameMin(f);
    this.mins.set(stack, n);
    return n;
  }
  private readonly mins = new WeakMap<Stack, number>();

  /** A cache key: equal keys, equal states. */
  key(stack: Stack): string {
    return stack.map((f) => this.frameKey(f)).join('|');
  }

  minLen(n: GrammarNode): number {
    const got = this.minLens.get(n);
    if (got !== undefined) return got;
    let v: number;
    switch (n.t) {
      case 'obj': v = 1 + this.objRest(n, 0, false); break;
      case 'anyobj': v = 2; break;
      case 'any': case 'num': case 'int': v = 1; break;
      case 'arr': { const m = n.min ?? 0; v = m === 0 ? 2 : 2 + m * this.minLen(n.items) + (m - 1); break; }
      case 'str': v = 2; break;
      case 'bool': v = 4; break;
      case 'null': v = 4; break;
      case 'lit': v = Math.min(...n.options.map((o) => this.litCost(utf8(o), 0))); break;
      case 'seq': v = n.parts.reduce((a, p) => a + this.minLen(p), 0); break;
      case 'choice': v = Math.min(...n.options.map(([s, m]) => this.litCost(utf8(s), 0) + this.minLen(m))); break;
    }
    this.minLens.set(n, v);
    return v;
  }

  private id(o: object): number {
    let v = this.ids.get(o);
    if (v === undefined) this.ids.set(o, (v = this.nextId++));
    return v;
  }

  private val(n: GrammarNode): Frame {
    let f = this.vals.get(n);
    if (!f) this.vals.set(n, (f = { k: 'val', n }));
    return f;
  }

  private litsFrame(opts: readonly LitOpt[]): Frame {
    return { k: 'lits', opts, alive: opts.map((_, i) => i), i: 0 };
  }

  private lits(key: string, make: () => LitOpt[]): readonly LitOpt[] {
    let o = this.litsCache.get(key);
    if (!o) this.litsCache.set(key, (o = make()));
    return o;
  }

  private litsOfNode(n: GrammarNode): readonly LitOpt[] {
    return this.lits(`n${this.id(n)}`, () => {
      switch (n.t) {
        case 'bool': return ['true', 'false'].map((s) => ({ b: utf8(s), then: [] }));
        case 'null': return [{ b: utf8('null'), then: [] }];
        case 'lit': return n.options.map((s) => ({ b: utf8(s), then: [] }));
        case 'choice': return n.options.map(([s, m]) => ({ b: utf8(s), then: [this.val(m)] }));
        default: throw new Error(`no literals for ${n.t}`);
      }
    });
  }

  /** An object's next choices: a property (the next required one, or any optional one before it) or '}'. */
  private objChoices(n: ObjNode, idx: number, any: boolean): readonly LitOpt[] {
    return this.lits(`o${this.id(n)}:${idx}:${any}`, () => {
      const out: LitOpt[] = [];
      let j = idx;
      for (; j < n.props.length; j++) {
        const p = n.props[j]!;
        out.push({ b: utf8(`${any ? ',' : ''}${JSON.stringify(p.key)}:`), then: [{ k: 'obj', n, idx: j + 1, any: true }, this.val(p.node)] });
        if (p.required) break;
      }
      if (j >= n.props.length) out.push({ b: utf8('}'), then: [] });
      return out;
    });
  }

  /** Bytes to close an object from property idx on: the required properties left, their commas, and '}'. */
  private objRest(n: ObjNode, idx: number, any: boolean): number {
    const key = `${this.id(n)}:${idx}:${any}`;
    const got = this.objRests.get(key);
    if (got !== undefined) return got;
    let v = 1, first = !any;
    for (let j = idx; j < n.props.length; j++) {
      const p = n.props[j]!;
      if (!p.required) continue;
      v += this.litCost(utf8(`${first ? '' : ','}${JSON.stringify(p.key)}:`), 0) + this.minLen(p.node);
      first = false;
    }
    this.objRests.set(key, v);
    return v;
  }

  private feedSub(sub: Stack, b: number): Frame[] | null {
    const r = this.step(sub, b);
    return r ? [...r] : null;
  }

  private feed(f: Frame, b: number): readonly Frame[] | null {
    switch (f.k) {
      case 'val': return this.feedVal(f.n, b);
      case 'lits': {
        const alive = f.alive.filter((o) => f.opts[o]!.b[f.i] === b);
        if (alive.length === 0) return null;
        const i = f.i + 1;
        if (alive.length === 1 && f.opts[alive[0]!]!.b.length === i) return f.opts[alive[0]!]!.then;
        return [{ k: 'lits', opts: f.opts, alive, i }];
      }
      case 'obj': return this.feed(this.litsFrame(this.objChoices(f.n, f.idx, f.any)), b);
      case 'arr': {
        const min = f.n.min ?? 0, max = f.n.max ?? Infinity;
        if (b === c(']')) return f.count >= min ? [] : null;
        if (f.count === 0) return max > 0 ? this.feedSub([{ k: 'arr', n: f.n, count: 1 }, this.val(f.n.items)], b) : null;
        return b === c(',') && f.count < max ? [{ k: 'arr', n: f.n, count: f.count + 1 }, this.val(f.n.items)] : null;
      }
      case 'str':
        if (f.ph === 0) {
          if (b === QUOTE) return [];
          if (b === BACKSLASH) return IN_STR[1]!;
        }
        if (f.ph === 0 || f.ph >= 6) {
          const ph = utf8Phase(f.ph, b);
          return ph < 0 ? null : IN_STR[ph]!;
        }
        if (f.ph === 1) return ESCAPES.has(b) ? IN_STR[0]! : b === c('u') ? IN_STR[5]! : null;
        return isHex(b) ? IN_STR[f.ph === 2 ? 0 : f.ph - 1]! : null;
      case 'num': {
        const nf = (ph: NumPh, d: number): Frame[] => [{ k: 'num', int: f.int, ph, d }];
        const digit = isDigit(b);
        switch (f.ph) {
          case 'start': return b === MINUS ? nf('minus', 0) : b === ZERO ? nf('zero', 1) : digit ? nf('int', 1) : null;
          case 'minus': return b === ZERO ? nf('zero', 1) : digit ? nf('int', 1) : null;
          case 'zero': case 'int':
            if (digit && f.ph === 'int' && f.d < MAX_INT_DIGITS) return nf('int', f.d + 1);
            if (f.int) return null;
            return b === DOT ? nf('dot', 0) : b === c('e') || b === c('E') ? nf('exp', 0) : null;
          case 'dot': return digit ? nf('frac', 1) : null;
          case 'frac':
            if (digit) return f.d < MAX_FRAC_DIGITS ? nf('frac', f.d + 1) : null;
            return b === c('e') || b === c('E') ? nf('exp', 0) : null;
          case 'exp': return b === PLUS || b === MINUS ? nf('expsign', 0) : digit ? nf('expd', 1) : null;
          case 'expsign': return digit ? nf('expd', 1) : null;
          case 'expd': return digit && f.d < MAX_EXP_DIGITS ? nf('expd', f.d + 1) : null;
        }
        return null;
      }
      case 'aobj':
        switch (f.ph) {
          case 'open': return b === QUOTE ? [{ k: 'aobj', ph: 'colon' }, STR[0]!] : b === c('}') ? [] : null;
          case 'key': return b === QUOTE ? [{ k: 'aobj', ph: 'colon' }, STR[0]!] : null;
          case 'colon': return b === c(':') ? [{ k: 'aobj', ph: 'next' }, this.val(ANY)] : null;
          case 'next': return b === c(',') ? [{ k: 'aobj', ph: 'key' }] : b === c('}') ? [] : null;
        }
        return null;
      case 'aarr':
        if (b === c(']')) return [];
        if (f.ph === 'open') return this.feedSub([{ k: 'aarr', ph: 'next' }, this.val(ANY)], b);
        return b === c(',') ? [{ k: 'aarr', ph: 'next' }, this.val(ANY)] : null;
    }
  }

  private feedVal(n: GrammarNode, b: number): readonly Frame[] | null {
    switch (n.t) {
      case 'obj': return b === c('{') ? [{ k: 'obj', n, idx: 0, any: false }] : null;
      case 'anyobj': return b === c('{') ? [{ k: 'aobj', ph: 'open' }] : null;
      case 'arr': return b === c('[') ? [{ k: 'arr', n, count: 0 }] : null;
      case 'str': return b === QUOTE ? [STR[0]!] : null;
      case 'num': case 'int': return this.feed({ k: 'num', int: n.t === 'int', ph: 'start', d: 0 }, b);
      case 'bool': case 'null': case 'lit': case 'choice': return this.feed(this.litsFrame(this.litsOfNode(n)), b);
      case 'seq': return this.feedSub(n.parts.map((p) => this.val(p)).reverse(), b);
      case 'any':
        if (b === c('{')) return [{ k: 'aobj', ph: 'open' }];
        if (b === c('[')) return [{ k: 'aarr', ph: 'open' }];
        if (b === QUOTE) return [STR[0]!];
        if (b === MINUS || isDigit(b)) return this.feed({ k: 'num', int: false, ph: 'start', d: 0 }, b);
        if (b === c('t') || b === c('f')) return this.feedVal({ t: 'bool' }, b);
        if (b === c('n')) return this.feedVal({ t: 'null' }, b);
        return null;
    }
  }

  private epsilon(f: Frame): readonly Frame[] | null {
    if (f.k === 'num') return f.ph === 'zero' || f.ph === 'int' || f.ph === 'frac' || f.ph === 'expd' ? [] : null;
    if (f.k === 'lits') {
      const done = f.alive.find((o) => f.opts[o]!.b.length === f.i);
      return done === undefined ? null : f.opts[done]!.then;
    }
    return null;
  }

  private frameMin(f: Frame): number {
    switch (f.k) {
      case 'val': return this.minLen(f.n);
      case 'lits': return Math.min(...f.alive.map((o) => this.litCost(f.opts[o]!.b, f.i) + f.opts[o]!.then.reduce((a, g) => a + this.frameMin(g), 0)));
      case 'obj': return this.objRest(f.n, f.idx, f.any);
      case 'arr': {
        const min = f.n.min ?? 0;
        if (f.count >= min) return 1;
        const need = min - f.count;
        return need * this.minLen(f.n.items) + (f.count === 0 ? need - 1 : need) + 1;
      }
      case 'str': return f.ph === 0 ? 1 : f.ph === 1 ? 2 : f.ph >= 11 ? 4 : f.ph >= 9 ? 3 : f.ph >= 6 ? f.ph - 4 : f.ph;
      case 'num': return f.ph === 'start' || f.ph === 'minus' || f.ph === 'dot' || f.ph === 'exp' || f.ph === 'expsign' ? 1 : 0;
      case 'aobj': return f.ph === 'key' ? 5 : f.ph === 'colon' ? 3 : 1;
      case 'aarr': return 1;
    }
  }

  private frameKey(f: Frame): string {
    switch (f.k) {
      case 'val': return `v${this.id(f.n)}`;
      case 'lits': return `l${this.id(f.opts)}:${f.i}:${f.alive.join(',')}`;
      case 'obj': return `o${this.id(f.n)}:${f.idx}:${f.any ? 1 : 0}`;
      // past minItems (and never 0) the count changes nothing while maxItems is unbounded: one key for them all
      case 'arr': return `a${this.id(f.n)}:${f.count > 0 && f.count >= (f.n.min ?? 0) && f.n.max === undefined ? '+' : f.count}`;
      case 'str': return `s${f.ph}`;
      case 'num': return `n${f.ph}${f.int ? 'i' : ''}${f.d}`;
      case 'aobj': return `O${f.ph}`;
      case 'aarr': return `A${f.ph}`;
    }
  }
}
