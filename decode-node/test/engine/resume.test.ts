// A request resumed after its node was lost (the gateway's continuation): prompt + the k tokens already
// generated are prefilled again, resumeTokens names those k, and the sampler's counter starts at k. The
// engine rebuilds what the lost node kept: the penalties' output counts (frequency, presence; repetition sees
// them in the prompt) and the grammar's state advanced over them. Each resume from k gives exactly the tokens
// the uninterrupted run gave after its first k, greedy and seeded; bad resume tokens are refused.
import test from 'ava';
import { loadPrefillModel } from '@latentwire/gpu/prefill';
import { FIXTURE_DIR, readFixtureJson } from '@latentwire/testing';
import { testGpu } from '@latentwire/gpu/testing';
import { grammarVocabulary, jsonSchemaGrammar } from '@latentwire/model';
import { DecodeModel } from '../../src/engine/decode-model.js';
import { DecodeEngine, type EngineRequest } from '../../src/engine/engine.js';

interface Case { readonly input_ids: number[] }
const cases = readFixtureJson<{ cases: Case[] }>('reference.json').cases;

test('engine - a resumed request (penalties, grammar; greedy and seeded) continues token for token from any point', async (t) => {
  const gpu = await testGpu();
  const { folder, model: prefill } = loadPrefillModel(gpu, FIXTURE_DIR);
  const cfg = folder.config;
  const model = await DecodeModel.create(gpu, cfg, prefill.weights, { maxBatch: 4, maxContext: 96, pageSize: 16, kvDtype: 'f32', numPages: 40, ropeFreqPrecision: prefill.ropeFreqPrecision });
  const engine = new DecodeEngine(model, prefill, { maxWaiting: 16, leaseMs: 10_000, grammarVocabulary: grammarVocabulary(folder) });
  const run = (req: EngineRequest) => new Promise<number[]>((resolve, reject) => {
    const tokens: number[] = [];
    engine.submit(req, { onTokens: (ts) => tokens.push(...ts), onFinish: (reason, _u, err) => (reason === 'error' ? reject(err) : resolve(tokens)) });
  });
  const prompt = cases[0]!.input_ids;
  const greedy = { temperature: 0, topK: 0, topP: 1, seed: 0 };
  const schema = { type: 'array', items: { type: 'integer' }, maxItems: 4 };
  const reqs: EngineRequest[] = [
    { id: 'freq', promptIds: prompt, maxTokens: 10, sampling: { ...greedy, frequencyPenalty: 2 } },
    { id: 'pres-rep-seeded', promptIds: prompt, maxTokens: 10, sampling: { temperature: 0.8, topK: 0, topP: 1, seed: 9, presencePenalty: 1.5, repetitionPenalty: 1.3 } },
    { id: 'grammar', promptIds: prompt, maxTokens: 12, sampling: { ...greedy, frequencyPenalty: 0.5, grammar: { root: jsonSchemaGrammar(schema).root, maxTokens: 12 } }, eosTokenIds: cfg.eosTokenIds },
  ];
  for (const req of reqs) {
    const whole = await run(req);
    t.true(whole.length >= 4, `${req.id}: ${whole.length} tokens`);
    const plain = await run({ ...req, id: `${req.id}-plain`, sampling: { ...req.sampling, frequencyPenalty: 0, presencePenalty: 0, repetitionPenalty: 1 } });
    if (!req.sampling.grammar) t.notDeepEqual(plain, whole, `${req.id}: the penalties change the output (so the test can see them lost)`);
    for (const k of [1, 3]) {
      const sent = whole.slice(0, k);
      const g = req.sampling.grammar;
      const resumed: EngineRequest = {
        ...req, id: `${req.id}-from-${k}`, promptIds: [...prompt, ...sent], maxTokens: req.maxTokens - k, resumeTokens: sent,
        sampling: { ...req.sampling, counterStart: k, ...(g ? { grammar: { ...g, maxTokens: g.maxTokens! - k } } : {}) },
      };
      t.deepEqual(await run(resumed), whole.slice(k), `${req.id} resumed after ${k} tokens`);
      if (k === 3 && !g) {
        // without resumeTokens the node cannot know the output so far: the penalties would be lost
        const { resumeTokens: _r, ...blind } = resumed;
        const lost = await run({ ...blind, id: `${req.id}-blind` });
        t.notDeepEqual(lost, whole.slice(k), `${req.id}: the counts matter after ${k} tokens`);
      }
    }
  }
  // bad resume tokens: refused before anything runs
  const base = reqs[2]!;
  t.throws(() => engine.submit({ ...base, id: 'vocab', promptIds: [...prompt, 1], resumeTokens: [cfg.vocabSize] }, { onTokens() {}, onFinish() {} }), { instanceOf: RangeError, message: /outside the vocabulary/ });
  t.throws(() => engine.submit({ ...base, id: 'long', promptIds: [1, 2], resumeTokens: [1, 2] }, { onTokens() {}, onFinish() {} }), { instanceOf: RangeError, message: /2 resume tokens in a prompt of 2/ });
  const x = folder.tokenizer.encode('x', { addBos: false })[0]!;
  t.throws(() => engine.submit({ ...base, id: 'ungrammatical', promptIds: [...prompt, x], resumeTokens: [x] }, { onTokens() {}, onFinish() {} }), { instanceOf: RangeError, message: /not allowed/ });
  await engine.idle();
  t.is(engine.stats().freePages, engine.stats().totalPages);
  model.release();
});
