// The JSON-schema grammar over the tiny model's vocabulary: random walks through the token masks (what a
// random model's sampling amounts to) always give text that parses and validates against the schema,
// within the token budget; unsupported schema features are refused by name.
import test from 'ava';
import { Ajv } from 'ajv';
import {
  ByteAutomaton, GrammarState, JSON_OBJECT_GRAMMAR, TokenGrammar, UnsupportedSchemaError, grammarVocabulary, jsonSchemaGrammar, openModelFolder,
  type GrammarSpec,
} from '../src/index.js';
import { FIXTURE_DIR } from '@latentwire/testing';

const folder = openModelFolder(FIXTURE_DIR);
const vocab = grammarVocabulary(folder);
const ajv = new Ajv({ strict: false });

export const SCHEMAS: Record<string, object> = {
  nested: {
    type: 'object',
    properties: {
      name: { type: 'string' },
      address: { type: 'object', properties: { city: { type: 'string' }, zip: { type: 'integer' } }, required: ['city', 'zip'], additionalProperties: false },
      nick: { type: 'string' },
    },
    required: ['name', 'address'],
    additionalProperties: false,
  },
  enums: {
    type: 'object',
    properties: { color: { enum: ['red', 'green', 'blue'] }, size: { enum: [1, 10, 100, null] }, ok: { type: 'boolean' }, none: { type: 'null' } },
    required: ['color', 'size', 'ok', 'none'],
    additionalProperties: false,
  },
  arrays: {
    type: 'object',
    properties: {
      tags: { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: 3 },
      points: { type: 'array', items: { type: 'object', properties: { x: { type: 'number' }, y: { type: 'number' } }, required: ['x', 'y'] } },
    },
    required: ['tags', 'points'],
  },
  numbers: { type: 'array', items: { type: 'number' }, minItems: 2 },
};

const isSet = (mask: Uint32Array, id: number) => ((mask[id >>> 5]! >>> (id & 31)) & 1) === 1;

/** Samples uniformly among the allowed tokens until EOS or the budget; returns the text and whether EOS came. */
function randomWalk(g: TokenGrammar, maxTokens: number, rand: () => number): { text: string; eos: boolean; tokens: number } {
  const s: GrammarState = g.start();
  const bytes: number[] = [];
  for (let n = 0; n < maxTokens; n++) {
    const mask = s.mask(maxTokens - n);
    const allowed: number[] = [];
    for (let id = 0; id < vocab.size; id++) if (isSet(mask, id)) allowed.push(id);
    if (allowed.length === 0) throw new Error('empty mask');
    const id = allowed[Math.floor(rand() * allowed.length)]!;
    s.advance(id);
    if (vocab.eos.includes(id)) return { text: new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes)), eos: true, tokens: n + 1 };
    bytes.push(...vocab.bytes[id]!);
  }
  return { text: new TextDecoder('utf-8', { fatal: true }).decode(Uint8Array.from(bytes)), eos: false, tokens: maxTokens };
}

function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => ((x ^= x << 13), (x ^= x >>> 17), (x ^= x << 5), (x >>> 0) / 2 ** 32);
}

for (const [name, schema] of Object.entries(SCHEMAS)) {
  test(`random walks give valid JSON for the ${name} schema, closed within max_tokens`, (t) => {
    const g = new TokenGrammar(jsonSchemaGrammar(schema), vocab);
    const validate = ajv.compile(schema);
    for (let seed = 1; seed <= 30; seed++) {
      const budget = g.minTokens() + (seed % 5) * 10;
      const r = randomWalk(g, budget, rng(seed));
      const value = JSON.parse(r.text) as unknown;
      t.true(validate(value), `${r.text}: ${ajv.errorsText(validate.errors)}`);
      t.true(r.eos, `no EOS within ${budget}: ${r.text}`);
    }
  });
}

test('json_object: random walks give a JSON object', (t) => {
  const g = new TokenGrammar(JSON_OBJECT_GRAMMAR, vocab);
  for (let seed = 1; seed <= 30; seed++) {
    const r = randomWalk(g, 8 + seed * 3, rng(seed));
    const v = JSON.parse(r.text) as unknown;
    t.true(typeof v === 'object' && v !== null && !Array.isArray(v), r.text);
  }
});

test('the byte automaton accepts exactly JSON of the schema', (t) => {
  const a = new ByteAutomaton(jsonSchemaGrammar(SCHEMAS['enums']!));
  const run = (s: string) => {
    let st: ReturnType<ByteAutomaton['initial']> | null = a.initial();
    for (const b of new TextEncoder().encode(s)) if (st) st = a.step(st, b);
    return st !== null && a.accepting(st);
  };
  t.true(run('{"color":"red","size":10,"ok":true,"none":null}'));
  t.true(run('{"color":"blue","size":1,"ok":false,"none":null}'));
  t.false(run('{"color":"pink","size":1,"ok":false,"none":null}'));
  t.false(run('{"color":"red","size":2,"ok":true,"none":null}'));
  t.false(run('{"color":"red","size":10,"ok":true}'));
  t.false(run('{"size":10,"color":"red","ok":true,"none":null}'));
});

test('strings are well-formed UTF-8: no overlongs, surrogates or code points past U+10FFFF', (t) => {
  const a = new ByteAutomaton(jsonSchemaGrammar({ type: 'string' }));
  const run = (bytes: number[]) => {
    let st: ReturnType<ByteAutomaton['initial']> | null = a.initial();
    for (const b of [0x22, ...bytes, 0x22]) if (st) st = a.step(st, b);
    return st !== null && a.accepting(st);
  };
  t.true(run([...new TextEncoder().encode('aé€😀\u{10ffff}')]));
  for (const bad of [[0xc0, 0x80], [0xe0, 0x80, 0x80], [0xed, 0xa0, 0x80], [0xf0, 0x80, 0x80, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xf5, 0x80, 0x80, 0x80], [0x80], [0xc3], [0x0a]]) {
    t.false(run(bad), bad.map((b) => b.toString(16)).join(' '));
  }
});

test('unsupported schema features are refused by name', (t) => {
  const e = t.throws(() => jsonSchemaGrammar({ type: 'object', properties: { a: { anyOf: [{ type: 'string' }] } } }), { instanceOf: UnsupportedSchemaError });
  t.is(e?.feature, 'anyOf');
  t.regex(e!.message, /anyOf.*#\/properties\/a/);
  t.is(t.throws(() => jsonSchemaGrammar({ type: 'string', pattern: '^a' }), { instanceOf: UnsupportedSchemaError })?.feature, 'pattern');
  t.is(t.throws(() => jsonSchemaGrammar({ $ref: '#/x' }), { instanceOf: UnsupportedSchemaError })?.feature, '$ref');
});

test('a spec survives the wire (JSON round trip) with the same masks', (t) => {
  const spec: GrammarSpec = JSON.parse(JSON.stringify(jsonSchemaGrammar(SCHEMAS['nested']!))) as GrammarSpec;
  const a = new TokenGrammar(spec, vocab).start().mask(100), b = new TokenGrammar(jsonSchemaGrammar(SCHEMAS['nested']!), vocab).start().mask(100);
  t.deepEqual([...a], [...b]);
});

test('masks equal a brute-force check of every token through the byte automaton (string states included)', (t) => {
  const g = new TokenGrammar(jsonSchemaGrammar(SCHEMAS['nested']!), vocab);
  const a = g.automaton;
  const s = g.start();
  const text = '{"name":"ab\\u00e9 c","address":{"city":"x","zip":12},"nick":"q"}';
  let stack = a.initial();
  let checked = 0;
  for (const ch of new TextEncoder().encode(text)) {
    const mask = s.mask(1 << 20);
    for (let id = 0; id < vocab.size; id++) {
      const b = vocab.bytes[id];
      let st: typeof stack | null = stack;
      if (b && b.length > 0) for (const x of b) if (st) st = a.step(st, x);
      const want = vocab.eos.includes(id) ? a.accepting(stack) : !!b && b.length > 0 && st !== null;
      if (isSet(mask, id) !== want) t.fail(`token ${id} after ${JSON.stringify(a.key(stack))}: mask ${isSet(mask, id)}, automaton ${want}`);
      checked++;
    }
    // advance by the single-byte token of this byte
    const id = vocab.bytes.findIndex((b) => b?.length === 1 && b[0] === ch);
    s.advance(id);
    stack = a.step(stack, ch)!;
  }
  t.pass(`${checked} (state, token) pairs`);
});
