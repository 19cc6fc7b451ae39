// Constrained decoding in the engine on the tiny fixture (a random model: its text is gibberish, so the grammar
// mask alone makes it JSON): constrained and plain requests batched together; every constrained output
// parses and validates against its schema within max_tokens, greedy and sampled, and the plain ones still
// reproduce transformers (their rows untouched by the mask).
import test from 'ava';
import { Ajv } from 'ajv';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import { grammarVocabulary, jsonSchemaGrammar, JSON_OBJECT_GRAMMAR } from '@latentwire/model';
import { DecodeModel } from '../../src/engine/decode-model.js';
import { DecodeEngine, type EngineRequest } from '../../src/engine/engine.js';
import type { FinishReason } from '../../src/scheduler/index.js';

interface Case { readonly input_ids: number[]; readonly greedy_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;

const SCHEMAS: object[] = [
  { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' }, tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 2 } }, required: ['name', 'age', 'tags'], additionalProperties: false },
  { type: 'object', properties: { p: { type: 'object', properties: { x: { type: 'number' }, ok: { type: 'boolean' } }, required: ['x', 'ok'] }, n: { type: 'null' } }, required: ['p'] },
];

test('engine - constrained rows give schema-valid JSON (greedy and sampled) beside plain rows that still match transformers', async (t) => {
  const gpu = await testGpu();
  const { folder, model: prefill } = loadPrefillModel(gpu, FIXTURE_DIR);
  const cfg = folder.config;
  const model = await DecodeModel.create(gpu, cfg, prefill.weights, { maxBatch: 8, maxContext: 160, pageSize: 16, kvDtype: 'bf16', numPages: 80, ropeFreqPrecision: prefill.ropeFreqPrecision });
  const engine = new DecodeEngine(model, prefill, { maxWaiting: 32, leaseMs: 10_000, grammarVocabulary: grammarVocabulary(folder) });
  const ajv = new Ajv();
  const reqs: (EngineRequest & { schema?: object })[] = [
    ...SCHEMAS.flatMap((schema, i) => [0, 0.9].map((temperature) => ({
      id: `json-${i}-${temperature}`, promptIds: cases[i]!.input_ids, maxTokens: 40, schema,
      sampling: { temperature, topK: 0, topP: 1, seed: 7 + i, grammar: { root: jsonSchemaGrammar(schema).root } }, eosTokenIds: cfg.eosTokenIds,
    }))),
    { id: 'object', promptIds: cases[0]!.input_ids, maxTokens: 24, sampling: { temperature: 1, topK: 0, topP: 1, seed: 3, grammar: JSON_OBJECT_GRAMMAR }, eosTokenIds: cfg.eosTokenIds },
    { id: 'plain', promptIds: cases[1]!.input_ids, maxTokens: 12, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0 }, eosTokenIds: cfg.eosTokenIds },
  ];
  const results = await Promise.all(reqs.map((req) => new Promise<{ tokens: number[]; reason: FinishReason; error?: unknown }>((resolve) => {
    const tokens: number[] = [];
    engine.submit(req, { onTokens: (ts) => tokens.push(...ts), onFinish: (reason, _u, error) => resolve({ tokens, reason, error }) });
  })));
  const eos = new Set(cfg.eosTokenIds);
  reqs.forEach((req, i) => {
    const r = results[i]!;
    t.is(r.error, undefined, req.id);
    if (req.id === 'plain') {
      t.deepEqual(r.tokens, cases[1]!.greedy_ids.slice(0, r.tokens.length), 'the plain row is as transformers decodes it');
      return;
    }
    const text = folder.tokenizer.decode(r.tokens.filter((id) => !eos.has(id)));
    t.is(r.reason, 'stop', `${req.id} ends with EOS within max_tokens: ${text}`);
    t.log(`${req.id}: ${text}`);
    const value = JSON.parse(text) as unknown;
    if (req.schema) t.true(ajv.validate(req.schema, value), `${req.id}: ${text} ${ajv.errorsText()}`);
    else t.true(typeof value === 'object' && value !== null && !Array.isArray(value));
  });
  await engine.idle();
  model.release();
});

test('engine - a prefilled first token outside the grammar is refused; a grammar without a vocabulary is refused', async (t) => {
  const gpu = await testGpu();
  const { folder, model: prefill } = loadPrefillModel(gpu, FIXTURE_DIR);
  const model = await DecodeModel.create(gpu, folder.config, prefill.weights, { maxBatch: 2, maxContext: 64, pageSize: 16, kvDtype: 'bf16', numPages: 8, ropeFreqPrecision: prefill.ropeFreqPrecision });
  const engine = new DecodeEngine(model, null, { maxWaiting: 4, leaseMs: 10_000, grammarVocabulary: grammarVocabulary(folder) });
  const req: EngineRequest = { id: 'r', promptIds: [0, 5, 6], maxTokens: 20, sampling: { temperature: 0, topK: 0, topP: 1, seed: 0, grammar: JSON_OBJECT_GRAMMAR } };
  engine.reserve('r', 23);
  const x = folder.tokenizer.encode('x', { addBos: false })[0]!;
  const events = { onTokens: () => undefined, onFinish: () => undefined };
  t.throws(() => engine.admitPrefilled(req, x, events), { instanceOf: RangeError, message: /not allowed by the request's grammar/ });
  const plain = new DecodeEngine(model, null, { maxWaiting: 4, leaseMs: 10_000 });
  plain.reserve('r', 23);
  t.throws(() => plain.admitPrefilled(req, x, events), { instanceOf: RangeError, message: /no grammar vocabulary/ });
  model.release();
});
