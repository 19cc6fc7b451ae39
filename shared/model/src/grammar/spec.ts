// A grammar as it crosses the wire (WireSampling.grammar): a tree of nodes the gateway compiled from a JSON
// schema (json-schema.ts), json_object mode, or a forced tool call (tool-calls.ts). Prefill and decode nodes
// build the byte automaton (automaton.ts) and its token masks (token-grammar.ts) from it over their own
// vocabulary. JSON is written compactly: no whitespace between tokens, properties in the schema's order.
export type GrammarNode =
  /** An object with these properties in this order; optional ones may be left out; no other keys. */
  | { readonly t: 'obj'; readonly props: readonly GrammarProp[] }
  /** Any JSON object (json_object mode). */
  | { readonly t: 'anyobj' }
  /** Any JSON value. */
  | { readonly t: 'any' }
  | { readonly t: 'arr'; readonly items: GrammarNode; readonly min?: number; readonly max?: number }
  | { readonly t: 'str' }
  | { readonly t: 'num' }
  | { readonly t: 'int' }
  | { readonly t: 'bool' }
  | { readonly t: 'null' }
  /** One of these exact texts (JSON enum/const values, serialized). */
  | { readonly t: 'lit'; readonly options: readonly string[] }
  /** These parts one after another. */
  | { readonly t: 'seq'; readonly parts: readonly GrammarNode[] }
  /** One of these literal texts (none a prefix of another), each followed by its own node. */
  | { readonly t: 'choice'; readonly options: readonly (readonly [string, GrammarNode])[] };

export interface GrammarProp {
  readonly key: string;
  readonly node: GrammarNode;
  readonly required: boolean;
}

export interface GrammarSpec {
  readonly root: GrammarNode;
}

export class GrammarError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GrammarError';
  }
}

const MAX_NODES = 10_000;

/** Checks a spec that came off the wire; throws GrammarError. */
export function validateGrammarSpec(spec: unknown): GrammarSpec {
  let count = 0;
  const fail = (why: string): never => {
    throw new GrammarError(`grammar: ${why}`);
  };
  const node = (n: unknown, depth: number): void => {
    if (++count > MAX_NODES) fail(`more than ${MAX_NODES} nodes`);
    if (depth > 64) fail('nested deeper than 64');
    if (!n || typeof n !== 'object') return fail('node is not an object');
    const g = n as Record<string, unknown>;
    switch (g['t']) {
      case 'anyobj': case 'any': case 'str': case 'num': case 'int': case 'bool': case 'null':
        return;
      case 'obj': {
        const props = g['props'];
        if (!Array.isArray(props)) return fail('obj without props');
        const keys = new Set<string>();
        for (const p of props as unknown[]) {
          const q = p as Record<string, unknown>;
          if (!q || typeof q['key'] !== 'string' || typeof q['required'] !== 'boolean') return fail('bad obj prop');
          if (keys.has(q['key'])) fail(`duplicate key ${q['key']}`);
          keys.add(q['key']);
          node(q['node'], depth + 1);
        }
        return;
      }
      case 'arr': {
        const min = g['min'] ?? 0, max = g['max'] ?? Infinity;
        if (typeof min !== 'number' || !Number.isInteger(min) || min < 0) fail('arr min');
        if (typeof max !== 'number' || !(max === Infinity || (Number.isInteger(max) && max >= (min as number)))) fail('arr max');
        return node(g['items'], depth + 1);
      }
      case 'lit': {
        const o = g['options'];
        if (!Array.isArray(o) || o.length === 0 || o.some((x) => typeof x !== 'string' || x.length === 0)) fail('lit options');
        return;
      }
      case 'seq': {
        const parts = g['parts'];
        if (!Array.isArray(parts) || parts.length === 0) return fail('seq parts');
        for (const p of parts) node(p, depth + 1);
        return;
      }
      case 'choice': {
        const o = g['options'];
        if (!Array.isArray(o) || o.length === 0) return fail('choice options');
        const texts = (o as unknown[]).map((x) => (Array.isArray(x) && typeof x[0] === 'string' && x[0].length > 0 ? x[0] : fail('choice option')));
        for (const a of texts) for (const b of texts) if (a !== b && b.startsWith(a)) fail('choice options must be prefix-free');
        for (const x of o as [string, unknown][]) node(x[1], depth + 1);
        return;
      }
      default:
        return fail(`unknown node type ${JSON.stringify(g['t'])}`);
    }
  };
  if (!spec || typeof spec !== 'object') fail('spec is not an object');
  node((spec as { root?: unknown }).root, 0);
  return spec as GrammarSpec;
}
